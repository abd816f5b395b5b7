package connection_test

import (
	"context"
	"maps"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/services/connection"
)

// redirectBank is a provider with one REDIRECT institution that records what each Callback got.
type redirectBank struct {
	connection.Provider // the methods a redirect login never calls

	mu        sync.Mutex
	callbacks []map[string]string
}

func (*redirectBank) Name() string { return "redirectbank" }

func (*redirectBank) Institutions(context.Context) ([]connection.Institution, error) {
	return []connection.Institution{{
		ExternalID: "rd-1", OrganizationID: "org-rd", OrganizationName: "Redirect Group", Name: "Redirect Bank",
		Country: "BR", Personal: true, Products: []string{"ACCOUNTS"}, Auth: connection.Redirect, Health: connection.Operational,
	}}, nil
}

func (*redirectBank) Authorize(_ context.Context, _ connection.Login, state, callbackURL string) (connection.Redirection, error) {
	return connection.Redirection{URL: "https://bank.test/authorize?" + url.Values{"state": {state}, "redirect_uri": {callbackURL}}.Encode()}, nil
}

func (p *redirectBank) Callback(_ context.Context, _ connection.Login, params map[string]string) (connection.Outcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.callbacks = append(p.callbacks, maps.Clone(params))
	return succeeded("OK"), nil
}

func (p *redirectBank) Callbacks() []map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.callbacks
}

func TestCompleteRedirectHandsTheProviderEveryParameterTheUpstreamSent(t *testing.T) {
	t.Parallel()
	bank := &redirectBank{}
	b := setupWith(t, bank)
	ins, err := b.api.ListInstitutions(b.as(b.client), &connectionv1.ListInstitutionsRequest{Query: "Redirect Bank"})
	require.NoError(t, err)
	require.Len(t, ins.GetInstitutions(), 1)
	created, err := b.api.CreateConnection(b.as(b.client), &connectionv1.CreateConnectionRequest{
		UserId: b.user, InstitutionId: ins.GetInstitutions()[0].GetId(),
	})
	require.NoError(t, err)
	c := created.GetConnection()
	require.Equal(t, "WAITING_REDIRECT", statusName(c.GetStatus()))
	authURL, err := url.Parse(c.GetAuthorizationUrl())
	require.NoError(t, err)
	state := authURL.Query().Get("state")

	_, err = b.api.CompleteRedirect(b.ctx, &connectionv1.CompleteRedirectRequest{
		State: state, Code: "the-code",
		Params: map[string]string{"state": state, "code": "shadowed", "id_connection": "42", "consentId": "c-1"},
	})
	require.NoError(t, err)
	b.runJobs(t)

	require.Equal(t, []map[string]string{{"code": "the-code", "id_connection": "42", "consentId": "c-1"}}, bank.Callbacks(),
		"the upstream's own parameters reach the provider; a named field wins; Puente's state does not leave")
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, c.GetId()).GetStatus()))
}
