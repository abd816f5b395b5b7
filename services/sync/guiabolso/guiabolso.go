// Package guiabolso is the sync side of Guiabolso Connect: wallet monitoring. A sync's users
// with a Guiabolso consent are sent in requests of up to 5,000 userTrackingIds, each answered
// with a synchronizationId, and Guiabolso says per user by webhook that their accounts were
// synchronized ("finished", each account SUCCESS or ERROR) or that it knows no such user
// ("notFound").
package guiabolso

import (
	"context"
	"errors"

	"puente.dev/pkg/upstream"
	gb "puente.dev/pkg/upstream/guiabolso"
	syncs "puente.dev/services/sync"
)

// Provider implements syncs.BatchProvider.
type Provider struct {
	client *gb.Client
}

var _ syncs.BatchProvider = (*Provider)(nil)

// New returns the provider over client.
func New(client *gb.Client) *Provider { return &Provider{client: client} }

func (p *Provider) Name() string  { return gb.Name }
func (p *Provider) MaxBatch() int { return gb.MaxSyncBatch }

// Ref is the consent's connection's userTrackingId.
func (p *Provider) Ref(c syncs.Consent) string { return gb.UserTrackingID(c.ConnectionID) }

func (p *Provider) Request(ctx context.Context, refs []string) (string, error) {
	id, err := p.client.SyncAccounts(ctx, refs, "")
	if err != nil {
		if e, ok := upstream.AsError(err); ok {
			return "", &syncs.UpstreamError{Reason: string(e.Kind), Temporary: e.Temporary(), Err: err}
		}
		return "", &syncs.UpstreamError{Reason: string(upstream.Unavailable), Temporary: true, Err: err}
	}
	return id, nil
}

func (p *Provider) ParseEvent(_ string, body []byte) (syncs.BatchEvent, error) {
	ev, err := gb.ParseSyncEvent(body)
	switch {
	case errors.Is(err, gb.ErrNotSyncEvent):
		return syncs.BatchEvent{}, syncs.ErrNotBatchEvent
	case err != nil:
		return syncs.BatchEvent{}, err
	}
	out := syncs.BatchEvent{RequestID: ev.SynchronizationID, Ref: ev.UserTrackingID, NotFound: ev.NotFound}
	for _, a := range ev.Accounts {
		if !a.OK() {
			out.FailedAccounts = append(out.FailedAccounts, gb.AccountID(a.AccountID))
		}
	}
	return out, nil
}
