package suite_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
)

// scrape reads the suite's /metrics.
func (b *bundle) scrape() string {
	b.t.Helper()
	resp, err := http.Get("http://" + b.suite.MetricsAddr() + "/metrics")
	require.NoError(b.t, err)
	defer resp.Body.Close()
	require.Equal(b.t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return string(body)
}

// scrapeUntil scrapes until every series is there (the counts are made after the commits that
// the API shows, so they may trail it briefly), and returns that scrape.
func (b *bundle) scrapeUntil(series ...string) string {
	b.t.Helper()
	var last string
	require.Eventually(b.t, func() bool {
		last = b.scrape()
		for _, s := range series {
			if !strings.Contains(last, s) {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "series missing from the scrape: %v", series)
	return last
}

func TestTheMainFlowsShowInTheMetricsWithoutIdentifiers(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	rcv := newReceiver(t)
	endpoint, secret := b.newEndpoint(c.Token, rcv.srv.URL+"/hooks")
	rcv.setSecret(secret)

	// A REST call, counted as the gRPC call the gateway makes.
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/institutions?country=CL", c.Token, nil).Status)

	user := b.newUser(c, "u-metrics")
	in := b.sandboxInstitution(c.Token, "CL")
	good := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
	b.watchUntil(c.Token, good.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	bad := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_badpass", "password": "pass_good"})
	b.watchUntil(c.Token, bad.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)

	// The connections' events reach the endpoint.
	rcv.waitFor("the successful connection's event arrives", func(ds []delivered) bool {
		for _, d := range ds {
			if d.FlowID == good.GetId() && d.Data["status"] == "SUCCEEDED" {
				return true
			}
		}
		return false
	})

	scrape := b.scrapeUntil(
		`puente_rpc_requests_total{code="OK",method="ListInstitutions",service="puente.connection.v1.InstitutionService"}`,
		`puente_rpc_requests_total{code="OK",method="CreateConnection",service="puente.connection.v1.ConnectionService"}`,
		`puente_rpc_duration_seconds_count{method="CreateConnection",service="puente.connection.v1.ConnectionService"}`,
		`puente_connections_total{institution="`+in.GetId()+`",outcome="succeeded",provider="sandbox"} 1`,
		`puente_connections_total{institution="`+in.GetId()+`",outcome="user_error",provider="sandbox"} 1`,
		`puente_webhook_delivery_attempts_total{endpoint="`+endpoint+`",result="success"}`,
		`puente_webhook_deliveries_total{endpoint="`+endpoint+`",outcome="delivered"}`,
		`puente_webhook_delivery_attempts_count{endpoint="`+endpoint+`"}`,
	)

	// Nothing that names a user, a client or a credential is a label value.
	for name, v := range map[string]string{
		"a user id": "usr_", "the user": user, "the client id": c.ID, "a client id": "cli_", "the access token": c.Token,
		"the API key": c.Secret, "a refresh token": c.Refresh, "the endpoint's secret": secret, "a webhook secret": "whsec_",
		"the password": "pass_good", "the username": "user_good", "a connection id": "con_", "the admin token": b.adminToken,
	} {
		require.NotContains(t, scrape, v, "the scrape holds %s", name)
	}
}
