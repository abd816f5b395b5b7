// Package caller carries who is calling through a request's context: the auth interceptor puts the
// verified principal there, domain code reads it to scope every query to one client.
package caller

import (
	"context"

	apiv1 "puente.dev/gen/go/puente/api/v1"
)

// Principal is a verified caller.
type Principal struct {
	Kind      apiv1.Principal
	ClientID  string   // every kind but PUBLIC and ADMIN
	UserID    string   // TASK and WIDGET: the one user they may touch
	ConsentID string   // TASK, optional
	LinkID    string   // WIDGET: the link token the session came from
	Products  []string // WIDGET
	Country   string   // WIDGET
	TokenID   string   // jti of the token
	Sandbox   bool     // the client is in the sandbox environment
}

type key struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, key{}, p)
}

// From returns the principal of ctx; a context without one is PUBLIC.
func From(ctx context.Context) Principal {
	p, ok := ctx.Value(key{}).(Principal)
	if !ok {
		return Principal{Kind: apiv1.Principal_PRINCIPAL_PUBLIC}
	}
	return p
}
