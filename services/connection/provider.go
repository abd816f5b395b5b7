package connection

import (
	"context"
	"time"
)

// Provider is one upstream's side of linking. The connection service drives every login through
// it, from background jobs, whatever the upstream's model: a credentials form with two-factor
// rounds (Syncfy), connectors with sources, SCA states and webauth (Powens), an Open Finance
// consent redirect (Klavi), an OTP-token widget (Boufin), or the scripted Sandbox.
type Provider interface {
	// Name is the provider's id: "sandbox", "syncfy", ...
	Name() string
	// Institutions returns the provider's catalog (its own ids in ExternalID; ID is ignored).
	Institutions(ctx context.Context) ([]Institution, error)
	// Start begins the login of a CREDENTIALS institution.
	Start(ctx context.Context, l Login) (Outcome, error)
	// Answer hands the user's answers to the pending challenge to the upstream.
	Answer(ctx context.Context, l Login, answers map[string]string) (Outcome, error)
	// Poll asks how a login that returned Running with PollAfter is doing.
	Poll(ctx context.Context, l Login) (Outcome, error)
	// Authorize returns where to send the user for a REDIRECT institution (with the values of the
	// institution's fields, if it has any, in l.Credentials). The upstream must send state back to
	// the callback, untouched.
	Authorize(ctx context.Context, l Login, state, callbackURL string) (Redirection, error)
	// Callback completes a redirect with the query parameters the upstream sent back.
	Callback(ctx context.Context, l Login, params map[string]string) (Outcome, error)
}

// Login is what a provider knows of a connection while it logs in.
type Login struct {
	ConnectionID string
	// ClientID and UserID are whose login it is: an upstream that keeps users (Syncfy, Powens)
	// gets one per Puente user, with the user id as its external reference.
	ClientID    string
	UserID      string
	Institution Institution
	// Credentials by field name, decrypted for the call only.
	Credentials map[string]string
	// State is what the provider returned in its last Outcome (an upstream job id, a cursor).
	State []byte
	// Round counts the challenges answered so far.
	Round int
}

// Outcome is where a provider says a login stands.
type Outcome struct {
	// Running (with PollAfter), WaitingMFA (with Challenge), Succeeded or Failed (with Reason).
	Status       Status
	Reason       Reason
	UpstreamCode string
	Message      string
	Challenge    *Challenge
	PollAfter    time.Duration
	// State is kept (encrypted) and handed back in the next Login.
	State []byte
}

// Redirection is where a REDIRECT login sends the user, and the provider's state from then on
// (an upstream consent or link id), kept sealed like an Outcome's.
type Redirection struct {
	URL   string
	State []byte
}

// EventRouter is implemented by a provider whose upstream sends webhooks about logins (a consent
// authorised, a connection synced). Webhooks are hints: the service polls each connection named,
// and the provider reads the truth from the upstream.
type EventRouter interface {
	// ConnectionsFor returns what an upstream webhook concerns; none when it concerns no login.
	// A provider that is a Referencer returns refs, which the service looks up among its own
	// connections; any other returns Puente connection ids (the external reference Puente gave
	// the upstream). The body was verified by the webhook service.
	ConnectionsFor(ctx context.Context, eventType string, body []byte) ([]string, error)
}

// Referencer is implemented by a provider whose upstream names a login only by its own ids
// (Powens' user and connection), not by anything Puente gave it. The service keeps, beside each
// connection, the refs of the state it last stored, so that an EventRouter can name them.
type Referencer interface {
	// Refs are the upstream references a login's state holds (none for an unreadable state).
	// A ref is unique within the provider: the first connection to claim it keeps it.
	Refs(state []byte) []string
}

// Revoker is implemented by a provider whose upstream keeps a consent or connection that must
// end when the user's connection is deleted here.
type Revoker interface {
	Revoke(ctx context.Context, l Login) error
}

// TimeMachine is implemented by a provider whose institutions are simulated (the Sandbox): it
// moves a linked connection's bank forward in time, so that integrators can watch transactions
// arrive, book and change.
type TimeMachine interface {
	// AdvanceDays returns the login's new state, days later, and the bank's date (YYYY-MM-DD).
	AdvanceDays(l Login, days int) (state []byte, bankDate string, err error)
}
