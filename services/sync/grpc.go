package syncs

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "puente.dev/gen/go/puente/consent/v1"
	syncv1 "puente.dev/gen/go/puente/sync/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
)

// GRPC serves the service's gRPC API: proto ⇄ domain translation only.
type GRPC struct {
	syncv1.UnimplementedSyncServiceServer
	svc *Service
}

var _ syncv1.SyncServiceServer = (*GRPC)(nil)

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// Register adds the service's API to s.
func (g *GRPC) Register(s grpc.ServiceRegistrar) { syncv1.RegisterSyncServiceServer(s, g) }

func (g *GRPC) CreateSync(ctx context.Context, req *syncv1.CreateSyncRequest) (*syncv1.CreateSyncResponse, error) {
	p := caller.From(ctx)
	if p.ClientID == "" {
		return nil, ErrPermissionDenied
	}
	// request_ids are per client and method.
	scope := p.ClientID + ":CreateSync"
	return idempotency.Call(ctx, g.svc.Idempotent, scope, req.GetRequestId(), req, func(s *Service) (*syncv1.CreateSyncResponse, error) {
		users := make([]UserRef, len(req.GetUsers()))
		for i, u := range req.GetUsers() {
			switch r := u.GetRef().(type) {
			case *syncv1.UserRef_UserId:
				users[i].UserID = r.UserId
			case *syncv1.UserRef_ExternalRef:
				users[i].ExternalRef = r.ExternalRef
			}
		}
		sy, err := s.CreateSync(ctx, p, users)
		if err != nil {
			return nil, err
		}
		return &syncv1.CreateSyncResponse{Sync: syncProto(sy)}, nil
	})
}

func (g *GRPC) GetSync(ctx context.Context, req *syncv1.GetSyncRequest) (*syncv1.GetSyncResponse, error) {
	sy, err := g.svc.GetSync(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &syncv1.GetSyncResponse{Sync: syncProto(sy)}, nil
}

func (g *GRPC) ListSyncResults(ctx context.Context, req *syncv1.ListSyncResultsRequest) (*syncv1.ListSyncResultsResponse, error) {
	pg, err := ParseResultsPage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var status UserStatus
	if st := req.GetStatus(); st != syncv1.UserResultStatus_USER_RESULT_STATUS_UNSPECIFIED {
		var ok bool
		if status, ok = userStatusOf[st]; !ok {
			return nil, apierr.Invalid("status", "is not a user result status")
		}
	}
	results, err := g.svc.ListSyncResults(ctx, caller.From(ctx), req.GetId(), status, pg)
	if err != nil {
		return nil, err
	}
	resp := &syncv1.ListSyncResultsResponse{Results: make([]*syncv1.UserResult, 0, len(results))}
	for _, r := range results {
		resp.Results = append(resp.Results, userResultProto(r))
	}
	if n := len(results); n > 0 && n == pg.Limit {
		resp.NextPageToken = ResultsPageToken(results[n-1].Position)
	}
	return resp, nil
}

func (g *GRPC) GetSchedule(ctx context.Context, req *syncv1.GetScheduleRequest) (*syncv1.GetScheduleResponse, error) {
	sc, err := g.svc.GetSchedule(ctx, caller.From(ctx), req.GetConsentId())
	if err != nil {
		return nil, err
	}
	return &syncv1.GetScheduleResponse{Schedule: scheduleProto(sc)}, nil
}

func (g *GRPC) UpdateSchedule(ctx context.Context, req *syncv1.UpdateScheduleRequest) (*syncv1.UpdateScheduleResponse, error) {
	sc, err := g.svc.UpdateSchedule(ctx, caller.From(ctx), req.GetConsentId(), ScheduleUpdate{
		IntervalHours: int(req.GetIntervalHours()), Paused: req.Paused,
	})
	if err != nil {
		return nil, err
	}
	return &syncv1.UpdateScheduleResponse{Schedule: scheduleProto(sc)}, nil
}

func (g *GRPC) ConsentChanged(ctx context.Context, req *syncv1.ConsentChangedRequest) (*syncv1.ConsentChangedResponse, error) {
	status, ok := consentStatusOf[req.GetStatus()]
	if !ok {
		return nil, apierr.Invalid("status", "is not a consent status")
	}
	ch := ConsentChange{ClientID: req.GetClientId(), ConsentID: req.GetConsentId(), UserID: req.GetUserId(), Status: status}
	if t := req.GetChangeTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, apierr.Invalid("change_time", "is not a valid time")
		}
		ch.ChangedAt = t.AsTime()
	}
	if err := g.svc.ConsentChanged(ctx, caller.From(ctx), ch); err != nil {
		return nil, err
	}
	return &syncv1.ConsentChangedResponse{}, nil
}

// ---- translation

var syncStatusProto = map[SyncStatus]syncv1.SyncStatus{
	Running:   syncv1.SyncStatus_SYNC_STATUS_RUNNING,
	Completed: syncv1.SyncStatus_SYNC_STATUS_COMPLETED,
}

var userStatusProto = map[UserStatus]syncv1.UserResultStatus{
	UserPending:  syncv1.UserResultStatus_USER_RESULT_STATUS_PENDING,
	UserSuccess:  syncv1.UserResultStatus_USER_RESULT_STATUS_SUCCESS,
	UserPartial:  syncv1.UserResultStatus_USER_RESULT_STATUS_PARTIAL,
	UserError:    syncv1.UserResultStatus_USER_RESULT_STATUS_ERROR,
	UserNotFound: syncv1.UserResultStatus_USER_RESULT_STATUS_NOT_FOUND,
}

var userStatusOf = func() map[syncv1.UserResultStatus]UserStatus {
	m := make(map[syncv1.UserResultStatus]UserStatus, len(userStatusProto))
	for k, v := range userStatusProto {
		m[v] = k
	}
	return m
}()

var accountStatusProto = map[AccountStatus]syncv1.AccountResultStatus{
	AccountSuccess: syncv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_SUCCESS,
	AccountError:   syncv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR,
}

var consentStatusOf = map[consentv1.ConsentStatus]string{
	consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION: ConsentAwaitingAuthorisation,
	consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED:             ConsentAuthorised,
	consentv1.ConsentStatus_CONSENT_STATUS_REJECTED:               ConsentRejected,
	consentv1.ConsentStatus_CONSENT_STATUS_REVOKED:                ConsentRevoked,
	consentv1.ConsentStatus_CONSENT_STATUS_EXPIRED:                ConsentExpired,
}

func syncProto(s Sync) *syncv1.Sync {
	return &syncv1.Sync{
		Id: s.ID, Status: syncStatusProto[s.Status],
		TotalUsers: int32(s.Total), PendingUsers: int32(s.Pending), SucceededUsers: int32(s.Succeeded),
		PartialUsers: int32(s.Partial), FailedUsers: int32(s.Failed), NotFoundUsers: int32(s.NotFound),
		CreateTime: timestamp(s.CreatedAt), CompleteTime: timestamp(s.CompletedAt),
	}
}

func userRefProto(r UserRef) *syncv1.UserRef {
	if r.UserID != "" {
		return &syncv1.UserRef{Ref: &syncv1.UserRef_UserId{UserId: r.UserID}}
	}
	return &syncv1.UserRef{Ref: &syncv1.UserRef_ExternalRef{ExternalRef: r.ExternalRef}}
}

func userResultProto(r UserResult) *syncv1.UserResult {
	p := &syncv1.UserResult{
		User: userRefProto(r.Ref), UserId: r.UserID, Status: userStatusProto[r.Status], Reason: r.Reason,
		FinishTime: timestamp(r.FinishedAt),
	}
	for _, a := range r.Accounts {
		p.Accounts = append(p.Accounts, &syncv1.AccountResult{
			AccountId: a.AccountID, ConsentId: a.ConsentID, Status: accountStatusProto[a.Status], Reason: a.Reason,
		})
	}
	return p
}

func scheduleProto(s Schedule) *syncv1.Schedule {
	return &syncv1.Schedule{
		ConsentId: s.ConsentID, IntervalHours: int32(s.IntervalHours), Paused: s.Paused,
		NextRunTime: timestamp(s.NextRunAt), LastRunTime: timestamp(s.LastRunAt), LastStatus: string(s.LastStatus),
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (g *GRPC) HandleUpstreamEvent(ctx context.Context, req *syncv1.HandleUpstreamEventRequest) (*syncv1.HandleUpstreamEventResponse, error) {
	if err := g.svc.HandleUpstreamEvent(ctx, caller.From(ctx), req.GetProvider(), req.GetEventType(), req.GetBody()); err != nil {
		return nil, err
	}
	return &syncv1.HandleUpstreamEventResponse{}, nil
}
