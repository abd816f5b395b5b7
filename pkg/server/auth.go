package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/caller"
)

// Who may call what is read from each RPC's puente.api.v1.access option in the protos; an RPC
// without one can be called by no one. Tokens are verified locally (JWKS, no call out per request).

var (
	errNoToken      = apierr.New(apierr.Unauthenticated, "UNAUTHENTICATED", "missing bearer token in the authorization header")
	errBadToken     = apierr.New(apierr.Unauthenticated, "UNAUTHENTICATED", "invalid or expired token")
	errNotAllowed   = apierr.New(apierr.PermissionDenied, "PERMISSION_DENIED", "this token may not call this method")
	errNoSuchMethod = apierr.New(apierr.PermissionDenied, "PERMISSION_DENIED", "method has no access rule")
	errSandboxOnly  = apierr.New(apierr.PermissionDenied, "SANDBOX_ONLY", "this method is for sandbox clients only")
)

type authenticator struct {
	verifier    Verifier
	adminHash   []byte // sha256 of the admin token, nil when none is configured
	serviceHash []byte // sha256 of the internal service token, nil when none is configured
	rules       sync.Map
}

func newAuthenticator(v Verifier, adminToken, serviceToken string) *authenticator {
	return &authenticator{verifier: v, adminHash: tokenHash(adminToken), serviceHash: tokenHash(serviceToken)}
}

func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	rule := a.rule(method)
	allowed := rule.GetPrincipals()
	if slices.Contains(allowed, apiv1.Principal_PRINCIPAL_PUBLIC) {
		return ctx, nil
	}
	if len(allowed) == 0 {
		return nil, errNoSuchMethod
	}
	token := bearer(ctx)
	if token == "" {
		return nil, errNoToken
	}
	if slices.Contains(allowed, apiv1.Principal_PRINCIPAL_ADMIN) && matches(token, a.adminHash) {
		return caller.With(ctx, caller.Principal{Kind: apiv1.Principal_PRINCIPAL_ADMIN}), nil
	}
	if slices.Contains(allowed, apiv1.Principal_PRINCIPAL_SERVICE) && matches(token, a.serviceHash) {
		return caller.With(ctx, caller.Principal{Kind: apiv1.Principal_PRINCIPAL_SERVICE}), nil
	}
	if a.verifier == nil || strings.Count(token, ".") != 2 {
		return nil, errBadToken
	}
	claims, err := a.verifier.Verify(ctx, token)
	if err != nil {
		if errors.Is(err, authn.ErrInvalidToken) {
			return nil, errBadToken
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &apierr.Error{Kind: apierr.Unavailable, Reason: "KEYS_UNAVAILABLE", Message: "cannot verify tokens right now; retry", RetryAfter: time.Second}
	}
	p, ok := principal(claims)
	if !ok {
		return nil, errBadToken
	}
	noteClient(ctx, p.ClientID)
	if !slices.Contains(allowed, p.Kind) {
		return nil, errNotAllowed
	}
	if rule.GetSandboxOnly() && !p.Sandbox {
		return nil, errSandboxOnly
	}
	return caller.With(ctx, p), nil
}

// matches compares a bearer token with a configured one's hash in constant time.
func matches(token string, want []byte) bool {
	if want == nil {
		return false
	}
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], want) == 1
}

func principal(c authn.Claims) (caller.Principal, bool) {
	p := caller.Principal{
		ClientID: c.Subject, UserID: c.UserID, ConsentID: c.ConsentID, LinkID: c.LinkID, Products: c.Products, Country: c.Country, TokenID: c.ID,
		Sandbox: c.Environment == authn.EnvSandbox,
	}
	switch c.Scope {
	case authn.ScopeClient:
		p.Kind = apiv1.Principal_PRINCIPAL_CLIENT
		return p, c.UserID == ""
	case authn.ScopeTask:
		p.Kind = apiv1.Principal_PRINCIPAL_TASK
		return p, c.UserID != ""
	case authn.ScopeWidget:
		p.Kind = apiv1.Principal_PRINCIPAL_WIDGET
		return p, c.UserID != "" && c.LinkID != ""
	}
	return caller.Principal{}, false
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// rule returns the access option of method (nil: no one may call it). Health checks and
// reflection are open to all: they are how load balancers and grpcurl find their way.
func (a *authenticator) rule(method string) *apiv1.Access {
	if r, ok := a.rules.Load(method); ok {
		return r.(*apiv1.Access)
	}
	var out *apiv1.Access
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	switch {
	case strings.HasPrefix(service, "grpc.health.") || strings.HasPrefix(service, "grpc.reflection."):
		out = &apiv1.Access{Principals: []apiv1.Principal{apiv1.Principal_PRINCIPAL_PUBLIC}}
	default:
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
		if sd, ok := d.(protoreflect.ServiceDescriptor); err == nil && ok {
			if md := sd.Methods().ByName(protoreflect.Name(name)); md != nil {
				if access, ok := proto.GetExtension(md.Options(), apiv1.E_Access).(*apiv1.Access); ok {
					out = access
				}
			}
		}
	}
	a.rules.Store(method, out)
	return out
}
