package connection

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/jobs"
)

// Consents is the consent service, as the connection service needs it.
type Consents interface {
	// Check verifies, as the caller, that a consent awaits authorisation for this user and
	// institution.
	Check(ctx context.Context, consentID, userID, institutionID string) error
	// Settle tells the consent service how the connection behind a consent ended.
	Settle(ctx context.Context, clientID, consentID, connectionID string, authorised bool, reason string) error
}

// ConsentClient is Consents over gRPC: checks go as the caller (their token along), settlements as
// the service (the internal service token).
type ConsentClient struct {
	Client       consentv1.ConsentServiceClient
	ServiceToken string
}

var (
	errConsentNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "consent not found")
	errConsentUnfit    = apierr.Invalid("consent_id", "is not a consent awaiting authorisation for this user and institution")
)

func (c ConsentClient) Check(ctx context.Context, consentID, userID, institutionID string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	if auth := md.Get("authorization"); len(auth) > 0 {
		out.Set("authorization", auth[0])
	}
	resp, err := c.Client.GetConsent(metadata.NewOutgoingContext(ctx, out), &consentv1.GetConsentRequest{Id: consentID})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return errConsentNotFound
	default:
		return fmt.Errorf("check consent: %w", err)
	}
	cns := resp.GetConsent()
	if cns.GetStatus() != consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION || cns.GetUserId() != userID || cns.GetInstitutionId() != institutionID {
		return errConsentUnfit
	}
	return nil
}

func (c ConsentClient) Settle(ctx context.Context, clientID, consentID, connectionID string, authorised bool, reason string) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.ServiceToken)
	_, err := c.Client.AuthoriseConsent(ctx, &consentv1.AuthoriseConsentRequest{
		ClientId: clientID, Id: consentID, ConnectionId: connectionID, Authorised: authorised, Reason: reason,
	})
	switch status.Code(err) {
	case codes.OK, codes.FailedPrecondition:
		// FailedPrecondition: the consent moved on (revoked, expired) meanwhile; nothing left
		// to settle.
		return nil
	case codes.NotFound, codes.InvalidArgument:
		return jobs.Cancel(fmt.Errorf("settle consent %s: %s", consentID, status.Code(err)))
	}
	return fmt.Errorf("settle consent %s: %s", consentID, status.Code(err))
}
