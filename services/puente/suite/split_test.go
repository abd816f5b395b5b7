package suite_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
)

// startOnly starts the given services alone, as one Kubernetes Deployment would, sharing the
// database and secrets of base.
func startOnly(t *testing.T, base *bundle, services []string, backendAddr string) *suite.Suite {
	t.Helper()
	cfg := base.cfg
	cfg.AuthtokenAddr, cfg.ConnectionAddr, cfg.ConsentAddr, cfg.WebhookAddr = backendAddr, backendAddr, backendAddr, backendAddr
	cfg.ExtractionAddr, cfg.SyncAddr = backendAddr, backendAddr
	s, err := suite.Start(context.Background(), cfg, services, telemetry.NewLogger(io.Discard, slog.LevelInfo, false))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func TestServicesRunInSeparateProcessesOverGRPC(t *testing.T) {
	base := setup(t)
	c := base.newClient("acme")
	backends := startOnly(t, base, []string{"authtoken", "webhook", "consent", "connection", "extraction", "sync"}, "")
	require.Empty(t, backends.HTTPAddr(), "no gateway in the services' process")
	gatewayOnly := startOnly(t, base, []string{"gateway"}, backends.GRPCAddr())

	gw := *base
	gw.rest = "http://" + gatewayOnly.HTTPAddr()
	grant := form(&gw, url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret)
	require.Equal(t, http.StatusOK, grant.Status, grant.JSON)
	created := gw.do(http.MethodPost, "/v1/users", str(grant.JSON, "access_token"), map[string]any{"external_ref": "u-1", "kind": "USER_KIND_NATURAL"})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	// The gateway verified the token with keys it fetched from the other process.
	require.Equal(t, http.StatusUnauthorized, gw.do(http.MethodGet, "/v1/users", "a.b.c", nil).Status)
}

func TestAGatewayWithoutItsBackendSaysUnavailableAndNamesNoHost(t *testing.T) {
	base := setup(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := lis.Addr().String()
	lis.Close()
	gatewayOnly := startOnly(t, base, []string{"gateway"}, dead)
	gw := *base
	gw.rest = "http://" + gatewayOnly.HTTPAddr()

	r := gw.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": "plt_x"})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, r.Raw)
	require.NotContains(t, r.Raw, "127.0.0.1")
	require.NotContains(t, r.Raw, "dial")

	tok := form(&gw, url.Values{"grant_type": {"client_credentials"}}, "cli_x", "psk_x")
	require.Equal(t, http.StatusServiceUnavailable, tok.Status)
	require.Equal(t, "temporarily_unavailable", tok.JSON["error"])
	require.NotContains(t, tok.JSON["error_description"], "127.0.0.1")
}

func TestCallersCannotSmuggleGRPCMetadata(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	r := b.do(http.MethodGet, "/v1/users", "", nil, "Grpc-Metadata-Authorization", "Bearer "+c.Token)
	require.Equal(t, http.StatusUnauthorized, r.Status, "only the Authorization header authenticates")

	req, err := http.NewRequest(http.MethodGet, b.rest+"/v1/users", nil)
	require.NoError(t, err)
	req.Header.Add("Authorization", "Bearer "+c.Token)
	req.Header.Add("Authorization", "Bearer a.b.c")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "two Authorization headers are refused")
}
