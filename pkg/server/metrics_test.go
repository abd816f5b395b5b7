package server_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
)

const getUser = "puente.authtoken.v1.UserService"

// series reads the puente_rpc_* series of one method: calls by code, and how many durations
// were observed.
func series(t *testing.T, reg *prometheus.Registry, service, method string) (byCode map[string]float64, timed uint64) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	byCode = map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] != service || labels["method"] != method {
				continue
			}
			switch f.GetName() {
			case "puente_rpc_requests_total":
				byCode[labels["code"]] += m.GetCounter().GetValue()
			case "puente_rpc_duration_seconds":
				timed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return byCode, timed
}

func TestEveryCallIsCountedWithTheCodeTheCallerSaw(t *testing.T) {
	b := setup(t, nil)
	token := b.token(t, authn.ScopeClient, "")
	req := &authtokenv1.GetUserRequest{Id: userID}

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return &authtokenv1.GetUserResponse{}, nil
	}
	require.NoError(t, call(b, token, req))
	require.NoError(t, call(b, token, req))

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return nil, apierr.New(apierr.NotFound, "NOT_FOUND", "user not found")
	}
	require.Equal(t, codes.NotFound, status.Code(call(b, token, req)), "a domain error counts as its mapped code")

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		return nil, errors.New("pq: something broke")
	}
	require.Equal(t, codes.Internal, status.Code(call(b, token, req)))

	b.svc.get = func(context.Context, *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
		panic("boom")
	}
	require.Equal(t, codes.Internal, status.Code(call(b, token, req)), "a panic counts as Internal")

	require.Equal(t, codes.Unauthenticated, status.Code(call(b, "", req)), "a refused token counts too")

	byCode, timed := series(t, b.metrics.Registry(), getUser, "GetUser")
	require.Equal(t, map[string]float64{"OK": 2, "NotFound": 1, "Internal": 2, "Unauthenticated": 1}, byCode)
	require.EqualValues(t, 6, timed, "every call is timed")

	families, err := b.metrics.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				require.NotContains(t, l.GetValue(), "usr_", "a request field never becomes a label")
				require.NotContains(t, l.GetValue(), "cli_", "the caller never becomes a label")
			}
		}
	}
}

func TestHealthAndStreamsAreCounted(t *testing.T) {
	b := setup(t, nil)
	_, err := healthpb.NewHealthClient(b.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)

	// A stream counts once, when it ends, with its final code.
	stream, err := reflectionpb.NewServerReflectionClient(b.conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	_, err = stream.Recv()
	require.NoError(t, err)
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF)

	byCode, timed := series(t, b.metrics.Registry(), "grpc.health.v1.Health", "Check")
	require.Equal(t, map[string]float64{"OK": 1}, byCode)
	require.EqualValues(t, 1, timed)
	byCode, timed = series(t, b.metrics.Registry(), "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo")
	require.Equal(t, map[string]float64{"OK": 1}, byCode)
	require.EqualValues(t, 1, timed)
}
