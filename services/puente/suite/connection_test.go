package suite_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/services/puente/suite"
)

// sandboxInstitution finds a sandbox institution of country with credential fields.
func (b *bundle) sandboxInstitution(token, country string) *connectionv1.Institution {
	b.t.Helper()
	resp, err := connectionv1.NewInstitutionServiceClient(b.conn).ListInstitutions(bearerCtx(token), &connectionv1.ListInstitutionsRequest{Country: country})
	require.NoError(b.t, err)
	for _, in := range resp.GetInstitutions() {
		if in.GetAuthMechanism() == connectionv1.AuthMechanism_AUTH_MECHANISM_CREDENTIALS &&
			in.GetHealth() == connectionv1.InstitutionHealth_INSTITUTION_HEALTH_OPERATIONAL && len(in.GetCredentialFields()) == 2 {
			return in
		}
	}
	b.t.Fatalf("no sandbox credentials institution in %s", country)
	return nil
}

// watchUntil follows WatchConnection until the connection reaches want (or a final status),
// and returns it.
func (b *bundle) watchUntil(token, id string, want connectionv1.ConnectionStatus) *connectionv1.Connection {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(bearerCtx(token), 30*time.Second)
	defer cancel()
	stream, err := connectionv1.NewConnectionServiceClient(b.conn).WatchConnection(ctx, &connectionv1.WatchConnectionRequest{Id: id})
	require.NoError(b.t, err)
	for {
		msg, err := stream.Recv()
		require.NoError(b.t, err, "the stream ended before the connection reached %s", want)
		c := msg.GetConnection()
		if c.GetStatus() == want {
			return c
		}
		if c.GetStatus() == connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED || c.GetStatus() == connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED {
			b.t.Fatalf("connection ended %s (%s), wanted %s", c.GetStatus(), c.GetReason(), want)
		}
	}
}

func (b *bundle) connect(token, user, institution string, creds map[string]string) *connectionv1.Connection {
	b.t.Helper()
	resp, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: institution, Credentials: creds,
	})
	require.NoError(b.t, err)
	return resp.GetConnection()
}

// redirectInstitution is a Chilean sandbox institution of the REDIRECT kind.
func (b *bundle) redirectInstitution(token string) string {
	b.t.Helper()
	list, err := connectionv1.NewInstitutionServiceClient(b.conn).ListInstitutions(bearerCtx(token), &connectionv1.ListInstitutionsRequest{Country: "CL"})
	require.NoError(b.t, err)
	for _, in := range list.GetInstitutions() {
		if in.GetAuthMechanism() == connectionv1.AuthMechanism_AUTH_MECHANISM_REDIRECT {
			return in.GetId()
		}
	}
	b.t.Fatal("no redirect institution in the sandbox catalog")
	return ""
}

func statuses(c *connectionv1.Connection) []string {
	var out []string
	for _, st := range c.GetTimeline() {
		out = append(out, strings.TrimPrefix(st.GetStatus().String(), "CONNECTION_STATUS_"))
	}
	return out
}

func TestSandboxLoginsEndAsScripted(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")

	for _, tc := range []struct {
		username string
		status   connectionv1.ConnectionStatus
		reason   connectionv1.FailureReason
		code     string
	}{
		{"user_good", connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED, 0, "200"},
		{"user_badpass", connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED, connectionv1.FailureReason_FAILURE_REASON_INVALID_CREDENTIALS, "401"},
		{"user_locked", connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED, connectionv1.FailureReason_FAILURE_REASON_LOCKED, "405"},
		{"user_action", connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED, connectionv1.FailureReason_FAILURE_REASON_USER_ACTION_REQUIRED, "408"},
	} {
		t.Run(tc.username, func(t *testing.T) {
			con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": tc.username, "password": "pass_good"})
			require.Equal(t, connectionv1.ConnectionStatus_CONNECTION_STATUS_PENDING, con.GetStatus(), "the login runs in the background")
			done := b.watchUntil(c.Token, con.GetId(), tc.status)
			require.Equal(t, tc.reason, done.GetReason())
			require.Equal(t, tc.code, done.GetUpstreamCode())
			require.Equal(t, []string{"PENDING", "STARTING", strings.TrimPrefix(tc.status.String(), "CONNECTION_STATUS_")}, statuses(done))
		})
	}
}

func TestTwoFactorRoundsThroughREST(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")

	created := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{
		"user_id": user, "institution_id": in.GetId(), "credentials": map[string]string{"username": "user_otp2", "password": "pass_good"},
	})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	id := str(created.JSON, "connection", "id")

	for _, answer := range []map[string]string{{"otp": "123456"}, {"pin": "4321"}} {
		waiting := b.watchUntil(c.Token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_MFA)
		ch := waiting.GetMfa()
		require.NotEmpty(t, ch.GetId())
		require.Len(t, ch.GetFields(), 1)
		for name := range answer {
			require.Equal(t, name, ch.GetFields()[0].GetName())
		}
		r := b.do(http.MethodPost, "/v1/connections/"+id+":submitMfa", c.Token, map[string]any{"challenge_id": ch.GetId(), "answers": answer})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		stale := b.do(http.MethodPost, "/v1/connections/"+id+":submitMfa", c.Token, map[string]any{"challenge_id": ch.GetId(), "answers": answer})
		require.NotEqual(t, http.StatusOK, stale.Status, "an answered challenge cannot be answered again")
	}
	done := b.watchUntil(c.Token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	require.Equal(t, []string{"PENDING", "STARTING", "WAITING_MFA", "RUNNING", "WAITING_MFA", "RUNNING", "SUCCEEDED"}, statuses(done))
}

func TestWatchConnectionStreamsThroughTheGateway(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})

	req, err := http.NewRequest(http.MethodGet, b.rest+"/v1/connections/"+con.GetId()+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var last string
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		var msg struct {
			Result struct {
				Connection struct {
					Status string `json:"status"`
				} `json:"connection"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(lines.Bytes(), &msg), lines.Text())
		last = msg.Result.Connection.Status
	}
	require.Equal(t, "CONNECTION_STATUS_SUCCEEDED", last, "the stream ends with the final state")
}

func TestCredentialsAreCheckedSealedAndNeverShown(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")

	for _, tc := range []struct {
		name  string
		creds map[string]string
		field string
	}{
		{"a missing password", map[string]string{"username": "user_good"}, "credentials.password"},
		{"an unknown field", map[string]string{"username": "user_good", "password": "x", "pin": "1"}, "credentials.pin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{"user_id": user, "institution_id": in.GetId(), "credentials": tc.creds})
			require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
			require.Contains(t, r.Raw, `"field":"`+tc.field+`"`)
		})
	}

	const password = "pass_good"
	con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": "user_good", "password": password})
	done := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	require.NotContains(t, done.String(), password)
	require.NotEmpty(t, done.GetUsernameHint())
	require.NotEqual(t, "user_good", done.GetUsernameHint())

	ctx := context.Background()
	db, err := pgx.Connect(ctx, b.cfg.DatabaseURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	var row string
	require.NoError(t, db.QueryRow(ctx, `SELECT c::text FROM connection.connections c WHERE id = $1`, con.GetId()).Scan(&row))
	require.NotContains(t, row, password, "credentials are encrypted at rest")
	require.NotContains(t, row, "user_good")
	var raw []byte
	require.NoError(t, db.QueryRow(ctx, `SELECT credentials FROM connection.connections WHERE id = $1`, con.GetId()).Scan(&raw))
	require.NotEmpty(t, raw)
	require.NotContains(t, string(raw), password)
	require.NotContains(t, b.logs.String(), password, "nor logged, even at debug level")

	get := b.do(http.MethodGet, "/v1/connections/"+con.GetId(), c.Token, nil)
	require.NotContains(t, get.Raw, password)
}

func TestConnectionsBelongToOneClient(t *testing.T) {
	b := setup(t)
	alice, bob := b.newClient("alice"), b.newClient("bob")
	in := b.sandboxInstitution(alice.Token, "CL")
	con := b.connect(alice.Token, b.newUser(alice, "a-1"), in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})

	_, err := connectionv1.NewConnectionServiceClient(b.conn).GetConnection(bearerCtx(bob.Token), &connectionv1.GetConnectionRequest{Id: con.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, http.StatusNotFound, b.do(http.MethodDelete, "/v1/connections/"+con.GetId(), bob.Token, nil).Status)
	list := b.do(http.MethodGet, "/v1/connections", bob.Token, nil)
	require.NotContains(t, list.Raw, con.GetId())

	// Bob cannot connect Alice's user either.
	r := b.do(http.MethodPost, "/v1/connections", bob.Token, map[string]any{
		"user_id": con.GetUserId(), "institution_id": in.GetId(), "credentials": map[string]string{"username": "user_good", "password": "pass_good"},
	})
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
}

func TestAWidgetSessionConnectsItsOwnUserOnly(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user, other := b.newUser(c, "u-1"), b.newUser(c, "u-2")
	lt := b.do(http.MethodPost, "/v1/link-tokens", c.Token, map[string]any{"user_id": user, "products": []string{"ACCOUNTS"}, "country": "CL"})
	session := str(b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": str(lt.JSON, "link_token")}).JSON, "session_token")
	require.NotEmpty(t, session)

	list := b.do(http.MethodGet, "/v1/institutions", session, nil)
	require.Equal(t, http.StatusOK, list.Status, list.Raw)
	for _, in := range list.JSON["institutions"].([]any) {
		require.Equal(t, "CL", in.(map[string]any)["country"], "a widget sees its link token's country only")
	}
	mx := b.do(http.MethodGet, "/v1/institutions?country=MX", session, nil)
	require.NotContains(t, mx.Raw, `"country":"MX"`)

	in := b.sandboxInstitution(c.Token, "CL")
	created := b.do(http.MethodPost, "/v1/connections", session, map[string]any{"institution_id": in.GetId(), "credentials": map[string]string{"username": "user_good", "password": "pass_good"}})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	require.Equal(t, user, str(created.JSON, "connection", "user_id"))
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/connections/"+str(created.JSON, "connection", "id"), session, nil).Status)

	forOther := b.do(http.MethodPost, "/v1/connections", session, map[string]any{"user_id": other, "institution_id": in.GetId(), "credentials": map[string]string{"username": "user_good", "password": "pass_good"}})
	require.Equal(t, http.StatusBadRequest, forOther.Status, forOther.Raw)
	otherCon := b.connect(c.Token, other, in.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/connections/"+otherCon.GetId(), session, nil).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodGet, "/v1/connections", session, nil).Status, "a widget cannot list")
	require.Equal(t, http.StatusForbidden, b.do(http.MethodDelete, "/v1/connections/"+otherCon.GetId(), session, nil).Status)

}

func TestUnansweredChallengeTimesOut(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	in := b.sandboxInstitution(c.Token, "CL")
	con := b.connect(c.Token, b.newUser(c, "u-1"), in.GetId(), map[string]string{"username": "user_otp_timeout", "password": "pass_good"})
	waiting := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_MFA)
	require.NotNil(t, waiting.GetMfa().GetExpireTime())
	failed := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)
	require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_MFA_TIMEOUT, failed.GetReason())

	r := b.do(http.MethodPost, "/v1/connections/"+con.GetId()+":submitMfa", c.Token, map[string]any{
		"challenge_id": waiting.GetMfa().GetId(), "answers": map[string]string{"otp": "123456"},
	})
	require.Equal(t, http.StatusBadRequest, r.Status, "too late: %s", r.Raw)
}

func TestASlowLoginSurvivesARestart(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	in := b.sandboxInstitution(c.Token, "CL")
	con := b.connect(c.Token, b.newUser(c, "u-1"), in.GetId(), map[string]string{"username": "user_slow", "password": "pass_good"})
	b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_RUNNING)

	// The process stops mid-login; another starts on the same database and finishes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.suite.Shutdown(ctx)
	again := startOnly(t, b, suite.Names, "")
	b2 := *b
	b2.conn = dial(t, again.GRPCAddr())
	done := b2.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	require.Equal(t, "200", done.GetUpstreamCode())
}

func TestFailedConnectionsReauthenticateInPlace(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	in := b.sandboxInstitution(c.Token, "CL")
	con := b.connect(c.Token, b.newUser(c, "u-1"), in.GetId(), map[string]string{"username": "user_good", "password": "wrong"})
	b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)

	r := b.do(http.MethodPost, "/v1/connections/"+con.GetId()+":reauthenticate", c.Token, map[string]any{"credentials": map[string]string{"username": "user_good", "password": "pass_good"}})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	done := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	require.Equal(t, con.GetId(), done.GetId())
	require.Contains(t, statuses(done), "FAILED", "the timeline keeps the failed attempt")

	require.Equal(t, http.StatusOK, b.do(http.MethodDelete, "/v1/connections/"+con.GetId(), c.Token, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/connections/"+con.GetId(), c.Token, nil).Status)
}

func TestRedirectInstitutionsCompleteOnTheCallbackOnce(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	redirect := b.redirectInstitution(c.Token)

	for _, tc := range []struct {
		result string
		status connectionv1.ConnectionStatus
		reason connectionv1.FailureReason
	}{
		{"approve", connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED, 0},
		{"deny", connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED, connectionv1.FailureReason_FAILURE_REASON_REDIRECT_DENIED},
	} {
		t.Run("the user answers "+tc.result, func(t *testing.T) {
			con := b.connect(c.Token, user, redirect, nil)
			require.Equal(t, connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_REDIRECT, con.GetStatus())
			authURL, err := url.Parse(con.GetAuthorizationUrl())
			require.NoError(t, err)
			state := authURL.Query().Get("state")
			require.True(t, strings.HasPrefix(state, "pst_"), con.GetAuthorizationUrl())
			require.Contains(t, authURL.Query().Get("redirect_uri"), "/v1/connections:callback")

			back := b.do(http.MethodGet, "/v1/connections:callback?state="+url.QueryEscape(state)+"&result="+tc.result, "", nil)
			require.Equal(t, http.StatusOK, back.Status, back.Raw)
			again := b.do(http.MethodGet, "/v1/connections:callback?state="+url.QueryEscape(state)+"&result="+tc.result, "", nil)
			require.Equal(t, http.StatusBadRequest, again.Status, "the state is single use: %s", again.Raw)
			require.Contains(t, again.Raw, "REDIRECT_STATE_INVALID")

			done := b.watchUntil(c.Token, con.GetId(), tc.status)
			require.Equal(t, tc.reason, done.GetReason())
		})
	}
	forged := b.do(http.MethodGet, "/v1/connections:callback?state=pst_forged&result=approve", "", nil)
	require.Equal(t, http.StatusBadRequest, forged.Status)
}

func TestTheCallbackRefusesTooManyOrOversizeParameters(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	con := b.connect(c.Token, user, b.redirectInstitution(c.Token), nil)
	authURL, err := url.Parse(con.GetAuthorizationUrl())
	require.NoError(t, err)
	callback := "/v1/connections:callback?state=" + url.QueryEscape(authURL.Query().Get("state")) + "&result=approve"

	many := callback
	for i := range 33 {
		many += fmt.Sprintf("&p%d=v", i)
	}
	big := callback + "&big=" + strings.Repeat("x", 2049)
	for name, path := range map[string]string{"33 parameters": many, "a value over 2048 characters": big} {
		r := b.do(http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", name, r.Raw)
		fields := fieldViolations(t, r)
		require.NotEmpty(t, fields, r.Raw)
		require.True(t, strings.HasPrefix(fields[0], "params"), "%s blames %v", name, fields)
	}

	// A refused callback did not spend the state: the user's real return still completes.
	back := b.do(http.MethodGet, callback+"&extra=kept", "", nil)
	require.Equal(t, http.StatusOK, back.Status, back.Raw)
	b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
}

func TestEveryTwoFactorScriptOfTheSandbox(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	for _, tc := range []struct {
		username string
		// answer picks the answer to a challenge
		answer func(t *testing.T, ch *connectionv1.MfaChallenge) map[string]string
		rounds int
	}{
		{"user_otp", func(*testing.T, *connectionv1.MfaChallenge) map[string]string {
			return map[string]string{"otp": "123456"}
		}, 1},
		{"user_image", func(t *testing.T, ch *connectionv1.MfaChallenge) map[string]string {
			f := ch.GetFields()[0]
			require.Equal(t, connectionv1.ChallengeFieldType_CHALLENGE_FIELD_TYPE_OPTIONS, f.GetType())
			require.Len(t, f.GetOptions(), 4)
			for _, o := range f.GetOptions() {
				require.NotEmpty(t, o.GetImage(), "each option carries its image")
				if o.GetLabel() == "The green square" {
					return map[string]string{f.GetName(): o.GetValue()}
				}
			}
			t.Fatal("no green square")
			return nil
		}, 1},
		{"user_captcha", func(t *testing.T, ch *connectionv1.MfaChallenge) map[string]string {
			require.NotEmpty(t, ch.GetImage(), "the captcha image comes with the challenge")
			return map[string]string{"captcha": "puente"}
		}, 1},
		{"user_otp", func() func(*testing.T, *connectionv1.MfaChallenge) map[string]string {
			wrong := true // the first answer is wrong: the sandbox asks again, as Syncfy does
			return func(*testing.T, *connectionv1.MfaChallenge) map[string]string {
				if wrong {
					wrong = false
					return map[string]string{"otp": "000000"}
				}
				return map[string]string{"otp": "123456"}
			}
		}(), 2},
	} {
		t.Run(tc.username, func(t *testing.T) {
			con := b.connect(c.Token, user, in.GetId(), map[string]string{"username": tc.username, "password": "pass_good"})
			for round := 1; round <= tc.rounds; round++ {
				waiting := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_MFA)
				require.Equal(t, int32(round), waiting.GetMfa().GetRound())
				_, err := connectionv1.NewConnectionServiceClient(b.conn).SubmitMfa(bearerCtx(c.Token), &connectionv1.SubmitMfaRequest{
					Id: con.GetId(), ChallengeId: waiting.GetMfa().GetId(), Answers: tc.answer(t, waiting.GetMfa()),
				})
				require.NoError(t, err)
			}
			b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
		})
	}
}

func TestADownInstitutionFailsUnavailable(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	list, err := connectionv1.NewInstitutionServiceClient(b.conn).ListInstitutions(bearerCtx(c.Token), &connectionv1.ListInstitutionsRequest{Country: "CL", Query: "Caído"})
	require.NoError(t, err)
	require.Len(t, list.GetInstitutions(), 1)
	down := list.GetInstitutions()[0]
	require.Equal(t, connectionv1.InstitutionHealth_INSTITUTION_HEALTH_DOWN, down.GetHealth())
	con := b.connect(c.Token, b.newUser(c, "u-1"), down.GetId(), map[string]string{"username": "user_good", "password": "pass_good"})
	failed := b.watchUntil(c.Token, con.GetId(), connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED)
	require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_INSTITUTION_UNAVAILABLE, failed.GetReason())
}

func TestManyLoginsAtOnceAllFinish(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	const n = 40
	ids := make(chan string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
				UserId: user, InstitutionId: in.GetId(), Credentials: map[string]string{"username": "user_good", "password": "pass_good"},
			})
			if err != nil {
				errs <- err
				return
			}
			ids <- resp.GetConnection().GetId()
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for id := range ids {
		b.watchUntil(c.Token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	}
}

func TestTheWidgetsReturnPageIsARedirectURIForEveryClient(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	redirect := b.redirectInstitution(c.Token)
	cons := connectionv1.NewConnectionServiceClient(b.conn)

	_, err := cons.CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: redirect, RedirectUri: "http://puente.test/connect/return/../../evil",
	})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "redirect_uri")

	resp, err := cons.CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: redirect, RedirectUri: "http://puente.test/connect/return",
	})
	require.NoError(t, err, "the widget's own page needs no registration")
	authURL, err := url.Parse(resp.GetConnection().GetAuthorizationUrl())
	require.NoError(t, err)
	require.Equal(t, "http://puente.test/connect/sandbox/authorize", authURL.Scheme+"://"+authURL.Host+authURL.Path,
		"the Sandbox's hosted consent page is served beside the widget")
	back, err := cons.CompleteRedirect(context.Background(), &connectionv1.CompleteRedirectRequest{
		State: authURL.Query().Get("state"), Result: "approve",
	})
	require.NoError(t, err)
	require.Equal(t, "http://puente.test/connect/return?connection_id="+resp.GetConnection().GetId(), back.GetRedirectUri())
}
