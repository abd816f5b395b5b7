package suite_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
)

func TestTenantsCannotSeeOrTouchEachOther(t *testing.T) {
	b := setup(t)
	alice, bob := b.newClient("alice"), b.newClient("bob")
	bobsUser := b.newUser(bob, "bob-1")
	bobsKeys := b.do(http.MethodGet, "/v1/api-keys", bob.Token, nil)
	bobsKey := bobsKeys.JSON["api_keys"].([]any)[0].(map[string]any)["id"].(string)

	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"reading another client's user", http.MethodGet, "/v1/users/" + bobsUser, nil},
		{"revoking another client's key", http.MethodPost, "/v1/api-keys/" + bobsKey + ":revoke", map[string]string{}},
		{"a link token for another client's user", http.MethodPost, "/v1/link-tokens", map[string]any{"user_id": bobsUser, "products": []string{"ACCOUNTS"}, "country": "CL"}},
		{"a task token for another client's user", http.MethodPost, "/v1/task-tokens", map[string]any{"user_id": bobsUser}},
	} {
		t.Run(tc.name+" reads as not found", func(t *testing.T) {
			r := b.do(tc.method, tc.path, alice.Token, tc.body)
			require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
			require.Equal(t, float64(codes.NotFound), r.JSON["code"])
		})
	}
	list := b.do(http.MethodGet, "/v1/users", alice.Token, nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.NotContains(t, list.Raw, bobsUser)
	filtered := b.do(http.MethodGet, "/v1/users?external_ref=bob-1", alice.Token, nil)
	require.NotContains(t, filtered.Raw, bobsUser)

	_, err := authtokenv1.NewUserServiceClient(b.conn).GetUser(bearerCtx(alice.Token), &authtokenv1.GetUserRequest{Id: bobsUser})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = authtokenv1.NewApiKeyServiceClient(b.conn).RevokeApiKey(bearerCtx(alice.Token), &authtokenv1.RevokeApiKeyRequest{Id: bobsKey})
	require.Equal(t, codes.NotFound, status.Code(err))

	// Bob's key still works: the failed revocation touched nothing.
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/users/"+bobsUser, bob.Token, nil).Status)
	keys := b.do(http.MethodGet, "/v1/api-keys", bob.Token, nil)
	require.NotContains(t, keys.Raw, "revoke_time")
}

func TestLinkTokenIsExchangedExactlyOnceUnderConcurrency(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	created := b.do(http.MethodPost, "/v1/link-tokens", c.Token, map[string]any{
		"user_id": user, "products": []string{"ACCOUNTS", "TRANSACTIONS"}, "country": "CL", "language": "es",
		"redirect_uri": "https://app.example/done",
	})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	token := str(created.JSON, "link_token")
	require.True(t, strings.HasPrefix(token, "plt_"))

	const n = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": token})
		}()
	}
	close(start)
	wg.Wait()
	var ok []response
	for _, r := range results {
		switch r.Status {
		case http.StatusOK:
			ok = append(ok, r)
		case http.StatusBadRequest:
			require.Contains(t, r.Raw, "LINK_TOKEN_INVALID")
		default:
			t.Fatalf("unexpected status %d: %s", r.Status, r.Raw)
		}
	}
	require.Equal(t, 1, len(ok), "exactly one of %d concurrent exchanges succeeds", n)
	s := ok[0].JSON
	require.Equal(t, user, s["user_id"])
	require.Equal(t, c.ID, s["client_id"])
	require.Equal(t, "https://app.example/done", s["redirect_uri"])
	require.Equal(t, []any{"ACCOUNTS", "TRANSACTIONS"}, s["products"])

	// The widget session is a token of its own kind: it cannot act as the client.
	session := str(s, "session_token")
	r := b.do(http.MethodGet, "/v1/users", session, nil)
	require.Equal(t, http.StatusForbidden, r.Status, r.Raw)
}

func TestTaskTokenReadsOnlyItsUser(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	mine, other := b.newUser(c, "u-1"), b.newUser(c, "u-2")
	r := b.do(http.MethodPost, "/v1/task-tokens", c.Token, map[string]any{"user_id": mine, "ttl_seconds": 300})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	task := str(r.JSON, "task_token")

	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/users/"+mine, task, nil).Status)
	require.Equal(t, http.StatusNotFound, b.do(http.MethodGet, "/v1/users/"+other, task, nil).Status)
	list := b.do(http.MethodGet, "/v1/users", task, nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.Contains(t, list.Raw, mine)
	require.NotContains(t, list.Raw, other)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/v1/users", task, map[string]any{"external_ref": "x", "kind": "USER_KIND_NATURAL"}).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, "/v1/task-tokens", task, map[string]any{"user_id": other}).Status)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodGet, "/v1/api-keys", task, nil).Status)
}

func TestAdminAPIIsForTheOperatorOnly(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a wrong admin token", b.adminToken + "x", http.StatusUnauthorized},
		{"a client's access token", c.Token, http.StatusForbidden},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			r := b.do(http.MethodPost, "/v1/admin/clients", tc.token, map[string]string{"name": "intruder"})
			require.Equal(t, tc.status, r.Status, r.Raw)
			require.Equal(t, tc.status, b.do(http.MethodGet, "/v1/admin/clients", tc.token, nil).Status)
		})
	}
	r := b.do(http.MethodGet, "/v1/admin/clients", b.adminToken, nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, r.Raw, c.ID)
	require.NotContains(t, r.Raw, "intruder")
}

func TestValidationErrorsNameTheField(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	for _, tc := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"an empty external_ref", "/v1/users", map[string]any{"external_ref": "", "kind": "USER_KIND_NATURAL"}, "external_ref"},
		{"a missing kind", "/v1/users", map[string]any{"external_ref": "x"}, "kind"},
		{"a CPF with a wrong check digit", "/v1/users", map[string]any{"external_ref": "x", "kind": "USER_KIND_NATURAL", "tax_id": map[string]any{"type": "TAX_ID_TYPE_CPF", "value": "529.982.247-26"}}, "tax_id.value"},
		{"a CNPJ on a natural person", "/v1/users", map[string]any{"external_ref": "x", "kind": "USER_KIND_NATURAL", "tax_id": map[string]any{"type": "TAX_ID_TYPE_CNPJ", "value": "11.222.333/0001-81"}}, "kind"},
		{"a NUL in a string", "/v1/users", map[string]any{"external_ref": "a\u0000b", "kind": "USER_KIND_NATURAL"}, "external_ref"},
		{"an unknown product", "/v1/link-tokens", map[string]any{"user_id": user, "products": []string{"GOLD"}, "country": "CL"}, "products[0]"},
		{"a malformed user id", "/v1/link-tokens", map[string]any{"user_id": "usr_1", "products": []string{"ACCOUNTS"}, "country": "CL"}, "user_id"},
		{"a lower-case country", "/v1/link-tokens", map[string]any{"user_id": user, "products": []string{"ACCOUNTS"}, "country": "cl"}, "country"},
		{"an unregistered redirect URI", "/v1/link-tokens", map[string]any{"user_id": user, "products": []string{"ACCOUNTS"}, "country": "CL", "redirect_uri": "https://evil.example/"}, "redirect_uri"},
		{"a too long task token", "/v1/task-tokens", map[string]any{"user_id": user, "ttl_seconds": 86400}, "ttl_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(http.MethodPost, tc.path, c.Token, tc.body)
			require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
			require.Contains(t, r.JSON["message"], tc.field)
			require.Contains(t, r.Raw, `"field":"`+tc.field+`"`, "a BadRequest detail names the field")
		})
	}

	// gRPC callers get the same field violations as google.rpc.BadRequest.
	_, err := authtokenv1.NewUserServiceClient(b.conn).CreateUser(bearerCtx(c.Token), &authtokenv1.CreateUserRequest{ExternalRef: "x"})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	require.Equal(t, []string{"kind"}, fields)

	// A body that is not JSON is a 400 that says so, not a 500.
	r := b.do(http.MethodPost, "/v1/users", c.Token, "{not json")
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
}

func TestRequestIDMakesCreatesIdempotent(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	body := map[string]any{"external_ref": "u-1", "kind": "USER_KIND_NATURAL", "request_id": "req-42"}
	first := b.do(http.MethodPost, "/v1/users", c.Token, body)
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	again := b.do(http.MethodPost, "/v1/users", c.Token, body)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.Equal(t, str(first.JSON, "user", "id"), str(again.JSON, "user", "id"), "the same request_id returns the first result")

	body["external_ref"] = "u-2"
	reused := b.do(http.MethodPost, "/v1/users", c.Token, body)
	require.Equal(t, http.StatusBadRequest, reused.Status)
	require.Contains(t, reused.Raw, "request_id")

	// Request ids are per client: another client's identical request_id is its own.
	other := b.newClient("other")
	body["external_ref"] = "u-1"
	theirs := b.do(http.MethodPost, "/v1/users", other.Token, body)
	require.Equal(t, http.StatusOK, theirs.Status)
	require.NotEqual(t, str(first.JSON, "user", "id"), str(theirs.JSON, "user", "id"))

	// A replayed key creation returns the same key and secret, and creates one key only.
	k1 := b.do(http.MethodPost, "/v1/api-keys", c.Token, map[string]string{"name": "ci", "request_id": "key-1"})
	k2 := b.do(http.MethodPost, "/v1/api-keys", c.Token, map[string]string{"name": "ci", "request_id": "key-1"})
	require.Equal(t, str(k1.JSON, "api_key", "id"), str(k2.JSON, "api_key", "id"))
	require.Equal(t, str(k1.JSON, "api_key", "secret"), str(k2.JSON, "api_key", "secret"))
	keys := b.do(http.MethodGet, "/v1/api-keys", c.Token, nil)
	require.Len(t, keys.JSON["api_keys"], 2)
}

func TestCORSLetsOnlyAllowedOriginsReadResponses(t *testing.T) {
	b := setup(t)
	pre := b.do(http.MethodOptions, "/v1/users", "", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	require.Equal(t, http.StatusNoContent, pre.Status)
	require.Equal(t, "https://app.example", pre.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, pre.Header.Get("Access-Control-Allow-Headers"), "Authorization")

	c := b.newClient("acme")
	ok := b.do(http.MethodGet, "/v1/users", c.Token, nil, "Origin", "https://app.example")
	require.Equal(t, http.StatusOK, ok.Status)
	require.Equal(t, "https://app.example", ok.Header.Get("Access-Control-Allow-Origin"), "the operator's origins read every response")
	evil := b.do(http.MethodGet, "/v1/users", c.Token, nil, "Origin", "https://evil.example")
	require.Empty(t, evil.Header.Get("Access-Control-Allow-Origin"), "another origin cannot read the response")
	require.Contains(t, evil.Header.Values("Vary"), "Origin")
}

func TestOversizedBodiesAreRefusedBeforeParsing(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	huge := `{"external_ref":"` + strings.Repeat("a", 2<<20) + `","kind":"USER_KIND_NATURAL"}`
	r := b.do(http.MethodPost, "/v1/users", c.Token, huge)
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Contains(t, r.Raw, "too large")
}
