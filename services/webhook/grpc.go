package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/page"
)

// GRPC serves the service's gRPC APIs: proto ⇄ domain translation only.
type GRPC struct {
	webhookv1.UnimplementedWebhookEndpointServiceServer
	webhookv1.UnimplementedEventServiceServer
	svc *Service
}

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// Register adds the service's APIs to s.
func (g *GRPC) Register(s grpc.ServiceRegistrar) {
	webhookv1.RegisterWebhookEndpointServiceServer(s, g)
	webhookv1.RegisterEventServiceServer(s, g)
	webhookv1.RegisterIngestServiceServer(s, &ingestGRPC{svc: g.svc})
	webhookv1.RegisterInboundServiceServer(s, &inboundGRPC{svc: g.svc})
}

// ---- WebhookEndpointService

func (g *GRPC) CreateWebhookEndpoint(ctx context.Context, req *webhookv1.CreateWebhookEndpointRequest) (*webhookv1.CreateWebhookEndpointResponse, error) {
	e, secret, err := g.svc.CreateEndpoint(ctx, caller.From(ctx), NewEndpoint{
		URL: req.GetUrl(), EventTypes: req.GetEventTypes(), Description: req.GetDescription(), RequestID: req.GetRequestId(),
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.CreateWebhookEndpointResponse{Endpoint: endpointProto(e), Secret: secret}, nil
}

func (g *GRPC) GetWebhookEndpoint(ctx context.Context, req *webhookv1.GetWebhookEndpointRequest) (*webhookv1.GetWebhookEndpointResponse, error) {
	e, err := g.svc.GetEndpoint(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetWebhookEndpointResponse{Endpoint: endpointProto(e)}, nil
}

func (g *GRPC) ListWebhookEndpoints(ctx context.Context, req *webhookv1.ListWebhookEndpointsRequest) (*webhookv1.ListWebhookEndpointsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "whe")
	if err != nil {
		return nil, err
	}
	es, err := g.svc.ListEndpoints(ctx, caller.From(ctx), p)
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.ListWebhookEndpointsResponse{}
	for _, e := range es {
		resp.Endpoints = append(resp.Endpoints, endpointProto(e))
	}
	if len(es) == p.Limit {
		resp.NextPageToken = page.Token(es[len(es)-1].ID)
	}
	return resp, nil
}

func (g *GRPC) UpdateWebhookEndpoint(ctx context.Context, req *webhookv1.UpdateWebhookEndpointRequest) (*webhookv1.UpdateWebhookEndpointResponse, error) {
	var ch EndpointChange
	ch.URL, ch.Enabled, ch.Description = req.Url, req.Enabled, req.Description
	if req.EventTypes != nil {
		types := req.GetEventTypes().GetValues()
		ch.EventTypes = &types
	}
	e, err := g.svc.UpdateEndpoint(ctx, caller.From(ctx), req.GetId(), ch)
	if err != nil {
		return nil, err
	}
	return &webhookv1.UpdateWebhookEndpointResponse{Endpoint: endpointProto(e)}, nil
}

func (g *GRPC) DeleteWebhookEndpoint(ctx context.Context, req *webhookv1.DeleteWebhookEndpointRequest) (*webhookv1.DeleteWebhookEndpointResponse, error) {
	if err := g.svc.DeleteEndpoint(ctx, caller.From(ctx), req.GetId()); err != nil {
		return nil, err
	}
	return &webhookv1.DeleteWebhookEndpointResponse{}, nil
}

func (g *GRPC) RotateWebhookSecret(ctx context.Context, req *webhookv1.RotateWebhookSecretRequest) (*webhookv1.RotateWebhookSecretResponse, error) {
	e, secret, err := g.svc.RotateSecret(ctx, caller.From(ctx), req.GetId(), time.Duration(req.GetOverlapSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return &webhookv1.RotateWebhookSecretResponse{Endpoint: endpointProto(e), Secret: secret}, nil
}

func (g *GRPC) SendTestEvent(ctx context.Context, req *webhookv1.SendTestEventRequest) (*webhookv1.SendTestEventResponse, error) {
	e, err := g.svc.SendTestEvent(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &webhookv1.SendTestEventResponse{Event: eventProto(e)}, nil
}

func (g *GRPC) RedeliverFailed(ctx context.Context, req *webhookv1.RedeliverFailedRequest) (*webhookv1.RedeliverFailedResponse, error) {
	n, err := g.svc.RedeliverFailed(ctx, caller.From(ctx), req.GetId(), req.GetSince().AsTime())
	if err != nil {
		return nil, err
	}
	return &webhookv1.RedeliverFailedResponse{Count: n}, nil
}

func endpointProto(e Endpoint) *webhookv1.WebhookEndpoint {
	p := &webhookv1.WebhookEndpoint{
		Id: e.ID, Url: e.URL, EventTypes: e.EventTypes, Enabled: e.Enabled, Description: e.Description,
		CreateTime: timestamppb.New(e.CreatedAt), UpdateTime: timestamppb.New(e.UpdatedAt),
	}
	if e.PreviousExpiresAt != nil {
		p.PreviousSecretExpireTime = timestamppb.New(*e.PreviousExpiresAt)
	}
	return p
}

// ---- EventService

func (g *GRPC) ListEvents(ctx context.Context, req *webhookv1.ListEventsRequest) (*webhookv1.ListEventsResponse, error) {
	after, err := parseCursor(req.GetCursor())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = 100
	}
	events, err := g.svc.ListEvents(ctx, caller.From(ctx), EventFilter{Types: req.GetTypes(), FlowID: req.GetFlowId(), AfterSeq: after, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.ListEventsResponse{HasMore: len(events) > limit}
	events = events[:min(len(events), limit)]
	for _, e := range events {
		resp.Events = append(resp.Events, eventProto(e))
	}
	if len(events) > 0 {
		after = events[len(events)-1].Seq
	}
	resp.NextCursor = cursor(after)
	return resp, nil
}

// A cursor is the position in the log after which to read; it is opaque to clients.
func cursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.FormatInt(seq, 10)))
}

func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(raw), "seq:"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	return 0, apierr.Invalid("cursor", "is not a cursor of the event feed")
}

func (g *GRPC) GetEvent(ctx context.Context, req *webhookv1.GetEventRequest) (*webhookv1.GetEventResponse, error) {
	e, err := g.svc.GetEvent(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetEventResponse{Event: eventProto(e)}, nil
}

func (g *GRPC) RedeliverEvent(ctx context.Context, req *webhookv1.RedeliverEventRequest) (*webhookv1.RedeliverEventResponse, error) {
	ds, err := g.svc.RedeliverEvent(ctx, caller.From(ctx), req.GetId(), req.GetEndpointId())
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.RedeliverEventResponse{}
	for _, d := range ds {
		resp.Deliveries = append(resp.Deliveries, deliveryProto(d))
	}
	return resp, nil
}

func (g *GRPC) ListDeliveries(ctx context.Context, req *webhookv1.ListDeliveriesRequest) (*webhookv1.ListDeliveriesResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "dlv")
	if err != nil {
		return nil, err
	}
	f := DeliveryFilter{EventID: req.GetEventId(), EndpointID: req.GetEndpointId(), Status: deliveryStatuses[req.GetStatus()]}
	ds, err := g.svc.ListDeliveries(ctx, caller.From(ctx), f, p)
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.ListDeliveriesResponse{}
	for _, d := range ds {
		resp.Deliveries = append(resp.Deliveries, deliveryProto(d))
	}
	if len(ds) == p.Limit {
		resp.NextPageToken = page.Token(ds[len(ds)-1].ID)
	}
	return resp, nil
}

var deliveryStatuses = map[webhookv1.DeliveryStatus]DeliveryStatus{
	webhookv1.DeliveryStatus_DELIVERY_STATUS_PENDING:   Pending,
	webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED: Delivered,
	webhookv1.DeliveryStatus_DELIVERY_STATUS_FAILED:    Failed,
}

func deliveryProto(d Delivery) *webhookv1.Delivery {
	p := &webhookv1.Delivery{
		Id: d.ID, EventId: d.EventID, EndpointId: d.EndpointID, AttemptCount: int32(d.Attempts), CreateTime: timestamppb.New(d.CreatedAt),
	}
	for k, v := range deliveryStatuses {
		if v == d.Status {
			p.Status = k
		}
	}
	if d.NextAttemptAt != nil && d.Status == Pending {
		p.NextAttemptTime = timestamppb.New(*d.NextAttemptAt)
	}
	if d.DeliveredAt != nil {
		p.DeliveredTime = timestamppb.New(*d.DeliveredAt)
	}
	for _, a := range d.History {
		p.Attempts = append(p.Attempts, &webhookv1.DeliveryAttempt{
			Number: int32(a.Number), Time: timestamppb.New(a.At), StatusCode: int32(a.StatusCode), LatencyMs: a.Latency.Milliseconds(),
			Error: a.Error, ResponseBody: a.ResponseBody,
		})
	}
	return p
}

func eventProto(e Event) *webhookv1.Event {
	p := &webhookv1.Event{Id: e.ID, Type: e.Type, Version: int32(e.Version), CreateTime: timestamppb.New(e.CreatedAt), FlowId: e.FlowID}
	var data map[string]any
	if json.Unmarshal(e.Data, &data) == nil {
		p.Data, _ = structpb.NewStruct(data)
	}
	return p
}

// ---- IngestService

type ingestGRPC struct {
	webhookv1.UnimplementedIngestServiceServer
	svc *Service
}

func (g *ingestGRPC) PublishEvents(ctx context.Context, req *webhookv1.PublishEventsRequest) (*webhookv1.PublishEventsResponse, error) {
	events := make([]Event, len(req.GetEvents()))
	for i, e := range req.GetEvents() {
		if !json.Valid(e.GetData()) {
			return nil, apierr.Invalid("events["+strconv.Itoa(i)+"].data", "is not JSON")
		}
		events[i] = Event{
			ID: e.GetId(), Type: e.GetType(), Version: int(e.GetVersion()), CreatedAt: e.GetCreateTime().AsTime(),
			FlowID: e.GetFlowId(), ClientID: e.GetClientId(), Data: e.GetData(),
		}
	}
	n, err := g.svc.Publish(ctx, events)
	if err != nil {
		return nil, err
	}
	return &webhookv1.PublishEventsResponse{Recorded: int32(n)}, nil
}

// ---- InboundService

type inboundGRPC struct {
	webhookv1.UnimplementedInboundServiceServer
	svc *Service
}

func (g *inboundGRPC) ReceiveWebhook(ctx context.Context, req *webhookv1.ReceiveWebhookRequest) (*webhookv1.ReceiveWebhookResponse, error) {
	w, err := g.svc.ReceiveInbound(ctx, req.GetProvider(), req.GetHeaders(), req.GetBody())
	if err != nil {
		return nil, err
	}
	return &webhookv1.ReceiveWebhookResponse{Id: w.ID}, nil
}
