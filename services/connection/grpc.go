package connection

import (
	"context"
	"maps"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/page"
)

// GRPC serves the service's gRPC APIs: proto ⇄ domain translation only.
type GRPC struct {
	connectionv1.UnimplementedInstitutionServiceServer
	connectionv1.UnimplementedConnectionServiceServer
	svc *Service
}

// sandboxGRPC serves SandboxService, the sandbox clients' controls.
type sandboxGRPC struct {
	connectionv1.UnimplementedSandboxServiceServer
	svc *Service
}

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// Register adds the service's APIs to s.
func (g *GRPC) Register(s grpc.ServiceRegistrar) {
	connectionv1.RegisterInstitutionServiceServer(s, g)
	connectionv1.RegisterConnectionServiceServer(s, g)
	connectionv1.RegisterSandboxServiceServer(s, &sandboxGRPC{svc: g.svc})
}

// ---- InstitutionService

func (g *GRPC) ListInstitutions(ctx context.Context, req *connectionv1.ListInstitutionsRequest) (*connectionv1.ListInstitutionsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "ins")
	if err != nil {
		return nil, err
	}
	f := InstitutionFilter{Country: req.GetCountry(), Product: req.GetProduct(), Query: req.GetQuery()}
	switch req.GetCustomerType() {
	case connectionv1.CustomerType_CUSTOMER_TYPE_PERSONAL:
		f.Personal = true
	case connectionv1.CustomerType_CUSTOMER_TYPE_BUSINESS:
		f.Business = true
	}
	ins, err := g.svc.ListInstitutions(ctx, caller.From(ctx), f, p)
	if err != nil {
		return nil, err
	}
	resp := &connectionv1.ListInstitutionsResponse{}
	for _, in := range ins {
		resp.Institutions = append(resp.Institutions, institutionProto(in))
	}
	if len(ins) == p.Limit {
		resp.NextPageToken = page.Token(ins[len(ins)-1].ID)
	}
	return resp, nil
}

func (g *GRPC) GetInstitution(ctx context.Context, req *connectionv1.GetInstitutionRequest) (*connectionv1.GetInstitutionResponse, error) {
	in, err := g.svc.GetInstitution(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &connectionv1.GetInstitutionResponse{Institution: institutionProto(in)}, nil
}

var authProto = map[AuthMechanism]connectionv1.AuthMechanism{
	Credentials: connectionv1.AuthMechanism_AUTH_MECHANISM_CREDENTIALS,
	Redirect:    connectionv1.AuthMechanism_AUTH_MECHANISM_REDIRECT,
}

var fieldTypeProto = map[FieldType]connectionv1.FieldType{
	Text:     connectionv1.FieldType_FIELD_TYPE_TEXT,
	Password: connectionv1.FieldType_FIELD_TYPE_PASSWORD,
	Select:   connectionv1.FieldType_FIELD_TYPE_SELECT,
}

var healthProto = map[Health]connectionv1.InstitutionHealth{
	Operational: connectionv1.InstitutionHealth_INSTITUTION_HEALTH_OPERATIONAL,
	Degraded:    connectionv1.InstitutionHealth_INSTITUTION_HEALTH_DEGRADED,
	Down:        connectionv1.InstitutionHealth_INSTITUTION_HEALTH_DOWN,
}

func institutionProto(in Institution) *connectionv1.Institution {
	p := &connectionv1.Institution{
		Id: in.ID, OrganizationId: in.OrganizationID, OrganizationName: in.OrganizationName, Name: in.Name,
		Country: in.Country, Provider: in.Provider, Personal: in.Personal, Business: in.Business, Products: in.Products,
		AuthMechanism: authProto[in.Auth], Sources: in.Sources, LogoUrl: in.LogoURL, Health: healthProto[in.Health],
	}
	for _, f := range in.Fields {
		pf := &connectionv1.CredentialField{
			Name: f.Name, Type: fieldTypeProto[f.Type], Label: f.Label, Description: f.Description, Required: f.Required,
			IsUsername: f.IsUsername, IsToken: f.IsToken, Validation: f.Validation,
		}
		for _, o := range f.Options {
			pf.Options = append(pf.Options, &connectionv1.Option{Value: o.Value, Label: o.Label})
		}
		p.CredentialFields = append(p.CredentialFields, pf)
	}
	return p
}

// ---- ConnectionService

func (g *GRPC) CreateConnection(ctx context.Context, req *connectionv1.CreateConnectionRequest) (*connectionv1.CreateConnectionResponse, error) {
	c, steps, err := g.svc.CreateConnection(ctx, caller.From(ctx), NewConnection{
		UserID: req.GetUserId(), InstitutionID: req.GetInstitutionId(), Credentials: req.GetCredentials(), ConsentID: req.GetConsentId(),
		RedirectURI: req.GetRedirectUri(),
	})
	if err != nil {
		return nil, err
	}
	return &connectionv1.CreateConnectionResponse{Connection: connectionProto(c, steps)}, nil
}

func (g *GRPC) GetConnection(ctx context.Context, req *connectionv1.GetConnectionRequest) (*connectionv1.GetConnectionResponse, error) {
	c, steps, err := g.svc.GetConnection(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &connectionv1.GetConnectionResponse{Connection: connectionProto(c, steps)}, nil
}

func (g *GRPC) ListConnections(ctx context.Context, req *connectionv1.ListConnectionsRequest) (*connectionv1.ListConnectionsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "con")
	if err != nil {
		return nil, err
	}
	cs, err := g.svc.ListConnections(ctx, caller.From(ctx), req.GetUserId(), p)
	if err != nil {
		return nil, err
	}
	resp := &connectionv1.ListConnectionsResponse{}
	for _, c := range cs {
		resp.Connections = append(resp.Connections, connectionProto(c, nil))
	}
	if len(cs) == p.Limit {
		resp.NextPageToken = page.Token(cs[len(cs)-1].ID)
	}
	return resp, nil
}

func (g *GRPC) WatchConnection(req *connectionv1.WatchConnectionRequest, stream grpc.ServerStreamingServer[connectionv1.WatchConnectionResponse]) error {
	ctx := stream.Context()
	return g.svc.Watch(ctx, caller.From(ctx), req.GetId(), func(c Connection, steps []Step) error {
		return stream.Send(&connectionv1.WatchConnectionResponse{Connection: connectionProto(c, steps)})
	})
}

func (g *GRPC) SubmitMfa(ctx context.Context, req *connectionv1.SubmitMfaRequest) (*connectionv1.SubmitMfaResponse, error) {
	c, err := g.svc.SubmitMFA(ctx, caller.From(ctx), req.GetId(), req.GetChallengeId(), req.GetAnswers())
	if err != nil {
		return nil, err
	}
	return &connectionv1.SubmitMfaResponse{Connection: connectionProto(c, nil)}, nil
}

func (g *GRPC) DeleteConnection(ctx context.Context, req *connectionv1.DeleteConnectionRequest) (*connectionv1.DeleteConnectionResponse, error) {
	if err := g.svc.DeleteConnection(ctx, caller.From(ctx), req.GetId()); err != nil {
		return nil, err
	}
	return &connectionv1.DeleteConnectionResponse{}, nil
}

func (g *GRPC) CompleteRedirect(ctx context.Context, req *connectionv1.CompleteRedirectRequest) (*connectionv1.CompleteRedirectResponse, error) {
	params := make(map[string]string, len(req.GetParams())+3)
	maps.Copy(params, req.GetParams())
	// The state is Puente's own, spent here: no provider needs it.
	delete(params, "state")
	for k, v := range map[string]string{"code": req.GetCode(), "error": req.GetError(), "result": req.GetResult()} {
		if v != "" {
			params[k] = v
		}
	}
	c, err := g.svc.CompleteRedirect(ctx, req.GetState(), params)
	if err != nil {
		return nil, err
	}
	return &connectionv1.CompleteRedirectResponse{Connection: connectionProto(c, nil), RedirectUri: ReturnURL(c, params["error"])}, nil
}

// ---- SandboxService

func (g *sandboxGRPC) RequireLogin(ctx context.Context, req *connectionv1.RequireLoginRequest) (*connectionv1.RequireLoginResponse, error) {
	c, err := g.svc.RequireLogin(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &connectionv1.RequireLoginResponse{Connection: connectionProto(c, nil)}, nil
}

func (g *sandboxGRPC) AdvanceDays(ctx context.Context, req *connectionv1.AdvanceDaysRequest) (*connectionv1.AdvanceDaysResponse, error) {
	date, err := g.svc.AdvanceDays(ctx, caller.From(ctx), req.GetId(), int(req.GetDays()))
	if err != nil {
		return nil, err
	}
	return &connectionv1.AdvanceDaysResponse{BankDate: date}, nil
}

func (g *GRPC) GetConnectionLink(ctx context.Context, req *connectionv1.GetConnectionLinkRequest) (*connectionv1.GetConnectionLinkResponse, error) {
	l, err := g.svc.ConnectionLink(ctx, caller.From(ctx), req.GetClientId(), req.GetId())
	if err != nil {
		return nil, err
	}
	c := l.Connection
	return &connectionv1.GetConnectionLinkResponse{
		ConnectionId: c.ID, UserId: c.UserID, Status: statusProto[c.Status], Reason: reasonProto[c.Reason],
		Provider: l.Institution.Provider, InstitutionId: l.Institution.ID, InstitutionExternalId: l.Institution.ExternalID,
		InstitutionCountry: l.Institution.Country, UpstreamState: l.UpstreamState,
	}, nil
}

func (g *sandboxGRPC) FireEvent(ctx context.Context, req *connectionv1.FireEventRequest) (*connectionv1.FireEventResponse, error) {
	// SANDBOX_EVENT_TYPE_CONNECTION_STATUS_CHANGED is the only type so far; validation refuses others.
	id, err := g.svc.FireStatusEvent(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &connectionv1.FireEventResponse{EventId: id}, nil
}

func (g *GRPC) ReauthenticateConnection(ctx context.Context, req *connectionv1.ReauthenticateConnectionRequest) (*connectionv1.ReauthenticateConnectionResponse, error) {
	c, err := g.svc.Reauthenticate(ctx, caller.From(ctx), req.GetId(), req.GetCredentials())
	if err != nil {
		return nil, err
	}
	return &connectionv1.ReauthenticateConnectionResponse{Connection: connectionProto(c, nil)}, nil
}

var statusProto = map[Status]connectionv1.ConnectionStatus{
	Pending:         connectionv1.ConnectionStatus_CONNECTION_STATUS_PENDING,
	Starting:        connectionv1.ConnectionStatus_CONNECTION_STATUS_STARTING,
	Running:         connectionv1.ConnectionStatus_CONNECTION_STATUS_RUNNING,
	WaitingMFA:      connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_MFA,
	WaitingRedirect: connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_REDIRECT,
	Succeeded:       connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED,
	Failed:          connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED,
}

var reasonProto = map[Reason]connectionv1.FailureReason{
	InvalidCredentials:     connectionv1.FailureReason_FAILURE_REASON_INVALID_CREDENTIALS,
	Locked:                 connectionv1.FailureReason_FAILURE_REASON_LOCKED,
	UserActionRequired:     connectionv1.FailureReason_FAILURE_REASON_USER_ACTION_REQUIRED,
	MFATimeout:             connectionv1.FailureReason_FAILURE_REASON_MFA_TIMEOUT,
	MFAFailed:              connectionv1.FailureReason_FAILURE_REASON_MFA_FAILED,
	InstitutionUnavailable: connectionv1.FailureReason_FAILURE_REASON_INSTITUTION_UNAVAILABLE,
	LoginRequired:          connectionv1.FailureReason_FAILURE_REASON_LOGIN_REQUIRED,
	RedirectDenied:         connectionv1.FailureReason_FAILURE_REASON_REDIRECT_DENIED,
	Internal:               connectionv1.FailureReason_FAILURE_REASON_INTERNAL,
}

var challengeTypeProto = map[ChallengeFieldType]connectionv1.ChallengeFieldType{
	ChallengeText:     connectionv1.ChallengeFieldType_CHALLENGE_FIELD_TYPE_TEXT,
	ChallengePassword: connectionv1.ChallengeFieldType_CHALLENGE_FIELD_TYPE_PASSWORD,
	ChallengeOptions:  connectionv1.ChallengeFieldType_CHALLENGE_FIELD_TYPE_OPTIONS,
}

func connectionProto(c Connection, steps []Step) *connectionv1.Connection {
	p := &connectionv1.Connection{
		Id: c.ID, UserId: c.UserID, InstitutionId: c.InstitutionID, Status: statusProto[c.Status], Reason: reasonProto[c.Reason],
		UpstreamCode: c.UpstreamCode, AuthorizationUrl: c.AuthorizationURL, UsernameHint: c.UsernameHint, ConsentId: c.ConsentID,
		CreateTime: timestamppb.New(c.CreatedAt), UpdateTime: timestamppb.New(c.UpdatedAt),
	}
	if ch := c.Challenge; ch != nil {
		m := &connectionv1.MfaChallenge{Id: ch.ID, Round: int32(ch.Round), Image: ch.Image, ExpireTime: timestamppb.New(ch.ExpiresAt),
			Purpose: connectionv1.ChallengePurpose_CHALLENGE_PURPOSE_VERIFICATION}
		if ch.AccountSelection {
			m.Purpose = connectionv1.ChallengePurpose_CHALLENGE_PURPOSE_ACCOUNT_SELECTION
		}
		for _, f := range ch.Fields {
			pf := &connectionv1.ChallengeField{Name: f.Name, Type: challengeTypeProto[f.Type], Label: f.Label}
			for _, o := range f.Options {
				pf.Options = append(pf.Options, &connectionv1.ChallengeOption{Value: o.Value, Label: o.Label, Image: o.Image})
			}
			m.Fields = append(m.Fields, pf)
		}
		p.Mfa = m
	}
	for _, st := range steps {
		p.Timeline = append(p.Timeline, &connectionv1.ConnectionStep{
			Status: statusProto[st.Status], Reason: reasonProto[st.Reason], UpstreamCode: st.UpstreamCode,
			Message: st.Message, Time: timestamppb.New(st.At),
		})
	}
	return p
}

func (g *GRPC) HandleUpstreamEvent(ctx context.Context, req *connectionv1.HandleUpstreamEventRequest) (*connectionv1.HandleUpstreamEventResponse, error) {
	if err := g.svc.HandleUpstreamEvent(ctx, req.GetProvider(), req.GetEventType(), req.GetBody()); err != nil {
		return nil, err
	}
	return &connectionv1.HandleUpstreamEventResponse{}, nil
}
