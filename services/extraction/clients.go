package extraction

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
)

// ConsentClient reads consents from the consent service with the internal service token.
type ConsentClient struct {
	Client       consentv1.ConsentServiceClient
	ServiceToken string
}

func (c ConsentClient) auth(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.ServiceToken)
}

func consentOf(p *consentv1.Consent) Consent {
	st := ConsentStatus(strings.TrimPrefix(p.GetStatus().String(), "CONSENT_STATUS_"))
	return Consent{
		ID: p.GetId(), UserID: p.GetUserId(), InstitutionID: p.GetInstitutionId(), ConnectionID: p.GetConnectionId(),
		Products: p.GetProducts(), Status: st,
	}
}

func (c ConsentClient) Get(ctx context.Context, clientID, id string) (Consent, error) {
	resp, err := c.Client.GetConsent(c.auth(ctx), &consentv1.GetConsentRequest{Id: id, ClientId: clientID})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return Consent{}, ErrConsentNotFound
	default:
		return Consent{}, fmt.Errorf("read consent %s: %w", id, err)
	}
	out := consentOf(resp.GetConsent())
	out.ClientID = clientID
	return out, nil
}

func (c ConsentClient) ListAuthorised(ctx context.Context, clientID, userID string) ([]Consent, error) {
	var out []Consent
	req := &consentv1.ListConsentsRequest{ClientId: clientID, UserId: userID, Status: consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED, PageSize: 500}
	for {
		resp, err := c.Client.ListConsents(c.auth(ctx), req)
		if err != nil {
			return nil, fmt.Errorf("list user's consents: %w", err)
		}
		for _, p := range resp.GetConsents() {
			cs := consentOf(p)
			cs.ClientID = clientID
			out = append(out, cs)
		}
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// ConnectionClient reads connections' links from the connection service with the internal
// service token.
type ConnectionClient struct {
	Client       connectionv1.ConnectionServiceClient
	ServiceToken string
}

func (c ConnectionClient) Link(ctx context.Context, clientID, connectionID string) (Link, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.ServiceToken)
	resp, err := c.Client.GetConnectionLink(ctx, &connectionv1.GetConnectionLinkRequest{ClientId: clientID, Id: connectionID})
	if err != nil {
		return Link{}, fmt.Errorf("read connection link: %w", err)
	}
	l := Link{
		ConnectionID: resp.GetConnectionId(), Succeeded: resp.GetStatus() == connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED,
		Provider: resp.GetProvider(), InstitutionID: resp.GetInstitutionId(), InstitutionExternalID: resp.GetInstitutionExternalId(),
		Country: resp.GetInstitutionCountry(), State: resp.GetUpstreamState(),
	}
	if r := resp.GetReason(); r != connectionv1.FailureReason_FAILURE_REASON_UNSPECIFIED {
		l.FailureReason = strings.TrimPrefix(r.String(), "FAILURE_REASON_")
	}
	return l, nil
}
