package syncs

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The services a sync needs, as narrow interfaces: clients.go implements them over gRPC with the
// internal service token; tests use fakes.

// DirectoryUser is a user the directory found.
type DirectoryUser struct {
	ID          string
	ExternalRef string
}

// Directory finds a client's users (the authtoken service).
type Directory interface {
	// Resolve returns the client's users among ids and externalRefs; those not found are simply
	// absent.
	Resolve(ctx context.Context, clientID string, ids, externalRefs []string) ([]DirectoryUser, error)
}

// Consent is an AUTHORISED consent, as a user's refresh needs it.
type Consent struct {
	ID            string
	InstitutionID string
	ConnectionID  string
}

// Consents lists consents (the consent service).
type Consents interface {
	// ListAuthorised returns every AUTHORISED consent of a client's user.
	ListAuthorised(ctx context.Context, clientID, userID string) ([]Consent, error)
}

// AccountRefresh is one account's outcome in a consent's refresh.
type AccountRefresh struct {
	AccountID string
	Status    AccountStatus
	Reason    string
}

// Refresh is a consent's refresh outcome: a result per account, or, when nothing could be
// refreshed, no accounts and the consent's Reason.
type Refresh struct {
	Accounts []AccountRefresh
	Reason   string
}

// Refresher refreshes a consent's data now (the extraction service).
type Refresher interface {
	// Refresh refreshes a consent; upstreamFailed are the provider's ids of accounts whose own
	// refresh the provider reported failing (a batch refresh's event).
	Refresh(ctx context.Context, clientID, consentID string, upstreamFailed []string) (Refresh, error)
}

// transient reports whether err, from a service this one calls, is worth retrying later: the
// service was down, slow or broke (Unavailable, DeadlineExceeded, Internal), or the call was cut
// short. Any other answer (NotFound, InvalidArgument, ...) would be the same next time.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.ResourceExhausted, codes.Aborted,
		codes.Canceled, codes.Unknown: // Unknown: not a status at all (a transport failure)
		return true
	}
	return false
}
