package consent

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
)

// GRPC serves the service's gRPC API: proto ⇄ domain translation only.
type GRPC struct {
	consentv1.UnimplementedConsentServiceServer
	svc *Service
}

var _ consentv1.ConsentServiceServer = (*GRPC)(nil)

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// Register adds the service's API to s.
func (g *GRPC) Register(s grpc.ServiceRegistrar) {
	consentv1.RegisterConsentServiceServer(s, g)
	consentv1.RegisterSandboxServiceServer(s, &sandboxGRPC{svc: g.svc})
}

// sandboxGRPC serves SandboxService, the sandbox clients' controls.
type sandboxGRPC struct {
	consentv1.UnimplementedSandboxServiceServer
	svc *Service
}

func (g *sandboxGRPC) ExpireConsent(ctx context.Context, req *consentv1.ExpireConsentRequest) (*consentv1.ExpireConsentResponse, error) {
	c, h, err := g.svc.ExpireConsent(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &consentv1.ExpireConsentResponse{Consent: consentProto(c, h)}, nil
}

// idempotent runs create once per request_id of the calling client and method, replaying the
// first response to repeats. A caller bound to one user (a widget session) has request ids of
// its own: two sessions of a client sending the same request_id and the same request (with
// user_id left empty) are two requests, for two users.
func idempotent[T proto.Message](ctx context.Context, g *GRPC, method, requestID string, req proto.Message, create func(*Service) (T, error)) (T, error) {
	var zero T
	p := caller.From(ctx)
	if p.ClientID == "" {
		return zero, fmt.Errorf("idempotent %s: no client to scope request_id to", method)
	}
	scope := p.ClientID + ":" + method
	if p.UserID != "" {
		scope = p.ClientID + ":" + p.UserID + ":" + method
	}
	return idempotency.Call(ctx, g.svc.Idempotent, scope, requestID, req, create)
}

func (g *GRPC) CreateConsent(ctx context.Context, req *consentv1.CreateConsentRequest) (*consentv1.CreateConsentResponse, error) {
	return idempotent(ctx, g, "CreateConsent", req.GetRequestId(), req, func(s *Service) (*consentv1.CreateConsentResponse, error) {
		n := NewConsent{UserID: req.GetUserId(), InstitutionID: req.GetInstitutionId(), Products: req.GetProducts()}
		if req.GetExpireTime() != nil {
			if err := req.GetExpireTime().CheckValid(); err != nil {
				return nil, apierr.Invalid("expire_time", "is not a valid time")
			}
			n.ExpiresAt = req.GetExpireTime().AsTime()
		}
		c, h, err := s.CreateConsent(ctx, caller.From(ctx), n)
		if err != nil {
			return nil, err
		}
		return &consentv1.CreateConsentResponse{Consent: consentProto(c, h)}, nil
	})
}

func (g *GRPC) GetConsent(ctx context.Context, req *consentv1.GetConsentRequest) (*consentv1.GetConsentResponse, error) {
	c, h, err := g.svc.GetConsent(ctx, caller.From(ctx), req.GetClientId(), req.GetId())
	if err != nil {
		return nil, err
	}
	return &consentv1.GetConsentResponse{Consent: consentProto(c, h)}, nil
}

// ListConsents lists consents without their history: GetConsent has it.
func (g *GRPC) ListConsents(ctx context.Context, req *consentv1.ListConsentsRequest) (*consentv1.ListConsentsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "cns")
	if err != nil {
		return nil, err
	}
	f := Filter{UserID: req.GetUserId()}
	if st := req.GetStatus(); st != consentv1.ConsentStatus_CONSENT_STATUS_UNSPECIFIED {
		var ok bool
		if f.Status, ok = statusOf[st]; !ok {
			return nil, apierr.Invalid("status", "is not a consent status")
		}
	}
	cs, err := g.svc.ListConsents(ctx, caller.From(ctx), req.GetClientId(), f, p)
	if err != nil {
		return nil, err
	}
	resp := &consentv1.ListConsentsResponse{}
	for _, c := range cs {
		resp.Consents = append(resp.Consents, consentProto(c, nil))
	}
	if len(cs) == p.Limit && len(cs) > 0 {
		resp.NextPageToken = page.Token(cs[len(cs)-1].ID)
	}
	return resp, nil
}

func (g *GRPC) RevokeConsent(ctx context.Context, req *consentv1.RevokeConsentRequest) (*consentv1.RevokeConsentResponse, error) {
	c, h, err := g.svc.RevokeConsent(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &consentv1.RevokeConsentResponse{Consent: consentProto(c, h)}, nil
}

func (g *GRPC) AuthoriseConsent(ctx context.Context, req *consentv1.AuthoriseConsentRequest) (*consentv1.AuthoriseConsentResponse, error) {
	c, h, err := g.svc.AuthoriseConsent(ctx, caller.From(ctx), Authorisation{
		ClientID: req.GetClientId(), ConsentID: req.GetId(), ConnectionID: req.GetConnectionId(),
		Authorised: req.GetAuthorised(), Reason: req.GetReason(),
	})
	if err != nil {
		return nil, err
	}
	return &consentv1.AuthoriseConsentResponse{Consent: consentProto(c, h)}, nil
}

var statusProto = map[Status]consentv1.ConsentStatus{
	AwaitingAuthorisation: consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION,
	Authorised:            consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED,
	Rejected:              consentv1.ConsentStatus_CONSENT_STATUS_REJECTED,
	Revoked:               consentv1.ConsentStatus_CONSENT_STATUS_REVOKED,
	Expired:               consentv1.ConsentStatus_CONSENT_STATUS_EXPIRED,
}

var statusOf = func() map[consentv1.ConsentStatus]Status {
	m := make(map[consentv1.ConsentStatus]Status, len(statusProto))
	for k, v := range statusProto {
		m[v] = k
	}
	return m
}()

func consentProto(c Consent, history []HistoryEntry) *consentv1.Consent {
	p := &consentv1.Consent{
		Id: c.ID, UserId: c.UserID, InstitutionId: c.InstitutionID, ConnectionId: c.ConnectionID,
		Products: c.Products, Status: statusProto[c.Status], ExpireTime: timestamp(c.ExpiresAt),
		CreateTime: timestamp(c.CreatedAt), UpdateTime: timestamp(c.UpdatedAt),
	}
	for _, e := range history {
		p.History = append(p.History, &consentv1.ConsentEvent{Status: statusProto[e.Status], Reason: e.Reason, Time: timestamp(e.At)})
	}
	return p
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
