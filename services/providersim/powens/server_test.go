package powens_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"puente.dev/services/providersim/powens"
)

type sim struct {
	t   *testing.T
	s   *powens.Server
	url string
}

func start(t *testing.T, o powens.Options) sim {
	t.Helper()
	o.ClientID, o.ClientSecret = "cid", "csecret"
	s := powens.New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); srv.Close() })
	return sim{t: t, s: s, url: srv.URL + "/2.0"}
}

func (m sim) call(method, path, token string, body any) (int, map[string]any) {
	m.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, m.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (m sim) temporaryUser() string {
	m.t.Helper()
	st, out := m.call("POST", "/auth/init", "", map[string]string{})
	if st != 200 || out["type"] != "temporary" || out["auth_token"] == "" {
		m.t.Fatalf("auth/init: %d %v", st, out)
	}
	return out["auth_token"].(string)
}

func TestTokensAreTemporaryUntilExchangedWithTheClientSecret(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := start(t, powens.Options{Now: clock})
	temp := m.temporaryUser()

	st, code := m.call("GET", "/auth/token/code", temp, nil)
	if st != 200 || code["code"] == "" {
		t.Fatalf("code: %d %v", st, code)
	}
	if st, out := m.call("POST", "/auth/token/access", "", map[string]string{"client_id": "cid", "client_secret": "wrong", "code": code["code"].(string)}); st != 401 || out["code"] != "forbidden" {
		t.Fatalf("a wrong secret: %d %v", st, out)
	}
	st, out := m.call("POST", "/auth/token/access", "", map[string]string{"client_id": "cid", "client_secret": "csecret", "code": code["code"].(string)})
	if st != 200 || out["token_type"] != "Bearer" {
		t.Fatalf("access: %d %v", st, out)
	}
	perm := out["access_token"].(string)
	if st, _ := m.call("POST", "/auth/token/access", "", map[string]string{"client_id": "cid", "client_secret": "csecret", "code": code["code"].(string)}); st != 400 {
		t.Fatalf("a code is single use: %d", st)
	}

	mu.Lock()
	now = now.Add(31 * time.Minute)
	mu.Unlock()
	if st, out := m.call("GET", "/auth/token/code", temp, nil); st != 401 {
		t.Fatalf("a temporary token expires after 30 minutes: %d %v", st, out)
	}
	if st, _ := m.call("GET", "/auth/token/code", perm, nil); st != 200 {
		t.Fatalf("a permanent token does not: %d", st)
	}
}

func TestConnectorsListSourcesAndFields(t *testing.T) {
	m := start(t, powens.Options{})
	_, out := m.call("GET", "/connectors?expand=fields,sources,countries", "", nil)
	list := out["connectors"].([]any)
	if len(list) != 2 {
		t.Fatalf("hidden connectors are not listed: %d", len(list))
	}
	bank := list[0].(map[string]any)
	if bank["uuid"] != powens.TestConnectorUUID || len(bank["sources"].([]any)) != 3 || len(bank["fields"].([]any)) != 5 {
		t.Fatalf("the test bank: %v", bank)
	}
	_, bare := m.call("GET", "/connectors", "", nil)
	if _, ok := bare["connectors"].([]any)[0].(map[string]any)["sources"]; ok {
		t.Fatal("sources only when expanded")
	}
}

func TestSourcesAreAddedOneByOneAndAccountsArriveDisabled(t *testing.T) {
	m := start(t, powens.Options{Transactions: 7})
	tok := m.temporaryUser()
	st, con := m.call("POST", "/users/me/connections?source=openapi", tok, map[string]string{"connector_uuid": powens.TestConnectorUUID, "login": "x", "password": "y"})
	if st != 200 || con["state"] != nil {
		t.Fatalf("create: %d %v", st, con)
	}
	id := strconv.Itoa(int(con["id"].(float64)))
	if st, out := m.call("POST", "/users/me/connections/"+id+"?source=legacy", tok, map[string]string{}); st != 400 || out["code"] != "dataError" {
		t.Fatalf("a disabled source is refused: %d %v", st, out)
	}
	if st, _ := m.call("POST", "/users/me/connections/"+id+"?source=directaccess", tok, map[string]string{}); st != 200 {
		t.Fatalf("second source: %d", st)
	}
	if st, out := m.call("GET", "/users/me/accounts", tok, nil); st != 400 || out["code"] != "noAccount" {
		t.Fatalf("no account is enabled yet: %d %v", st, out)
	}
	_, all := m.call("GET", "/users/me/connections/"+id+"?expand=all_accounts", tok, nil)
	accs := all["all_accounts"].([]any)
	if len(accs) != 4 {
		t.Fatalf("four accounts over two sources: %d", len(accs))
	}
	first := strconv.Itoa(int(accs[0].(map[string]any)["id"].(float64)))
	if st, _ := m.call("GET", "/users/me/accounts/"+first+"/transactions", tok, nil); st != 404 {
		t.Fatalf("a disabled account has no transactions: %d", st)
	}
	if st, _ := m.call("POST", "/users/me/accounts/"+first+"?all", tok, map[string]bool{"disabled": false}); st != 200 {
		t.Fatalf("activate: %d", st)
	}
	_, page := m.call("GET", "/users/me/accounts/"+first+"/transactions?limit=5&offset=0", tok, nil)
	if len(page["transactions"].([]any)) != 5 || page["_links"].(map[string]any)["next"] == nil {
		t.Fatalf("first page: %v", page)
	}
	_, last := m.call("GET", "/users/me/accounts/"+first+"/transactions?limit=5&offset=5", tok, nil)
	if len(last["transactions"].([]any)) != 2 || last["_links"].(map[string]any)["next"] != nil {
		t.Fatalf("last page: %v", last)
	}
	if tmp, perm := m.s.DataCalls(); tmp != 4 || perm != 0 {
		t.Fatalf("data calls by token kind: %d %d", tmp, perm)
	}
}

func TestWrongpassDeletesTheConnectionAtOnce(t *testing.T) {
	m := start(t, powens.Options{})
	tok := m.temporaryUser()
	st, out := m.call("POST", "/users/me/connections", tok, map[string]string{"connector_uuid": powens.TestConnectorUUID, "login": powens.LoginWrongpass, "password": "y"})
	if st != 400 || out["code"] != "wrongpass" || out["description"] == "" {
		t.Fatalf("wrongpass: %d %v", st, out)
	}
	if m.s.Connections() != 0 {
		t.Fatal("the connection is gone")
	}
}

func TestWebhooksAreSignedAsTheProviderFileSays(t *testing.T) {
	if got := powens.Sign("powens-test-secret", "/webhooks/powens/connection-synced", "Mon, 06 Jan 2025 10:00:00 GMT",
		[]byte(`{"user":{"id":1},"connection":{"id":7,"state":null}}`)); got != "JnDl5z+Svj0Sa83zKjEHhKIOiiW2V1moPYry9atanxY=" {
		t.Fatalf("the test vector: %s", got)
	}
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer hook.Close()
	m := start(t, powens.Options{WebhookURL: hook.URL + "/v1/inbound/powens", WebhookSecret: "whsec"})
	tok := m.temporaryUser()
	_, con := m.call("POST", "/users/me/connections", tok, map[string]string{"connector_uuid": powens.TestConnectorUUID, "login": "x", "password": "y"})
	id := int64(con["id"].(float64))
	if err := m.s.NotifyConnectionSynced(context.Background(), id); err == nil {
		t.Fatal("a temporary user gets no webhook")
	}
	_, code := m.call("GET", "/auth/token/code", tok, nil)
	m.call("POST", "/auth/token/access", "", map[string]string{"client_id": "cid", "client_secret": "csecret", "code": code["code"].(string)})
	if err := m.s.NotifyConnectionSynced(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	r, body := <-got, <-bodies
	date := r.Header.Get("BI-Signature-Date")
	if r.Header.Get("BI-Signature") != powens.Sign("whsec", "/v1/inbound/powens", date, body) {
		t.Fatal("the signature covers POST, the path, the date and the body")
	}
}

func TestFaultsGarbleHangAndDrop(t *testing.T) {
	m := start(t, powens.Options{})
	m.s.Fault("GET /connectors", powens.Garbage)
	resp, err := http.Get(m.url + "/connectors")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Valid(b) {
		t.Fatal("garbage is not JSON")
	}
	m.s.Fault("GET /connectors", powens.Drop)
	if _, err := http.Get(m.url + "/connectors"); err == nil {
		t.Fatal("a dropped connection is an error")
	}
	m.s.Fault("GET /connectors", powens.Hang)
	c := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := c.Get(m.url + "/connectors"); err == nil {
		t.Fatal("a hang times out")
	}
	m.s.Fault("GET /connectors", powens.NoFault)
	if resp, err := http.Get(m.url + "/connectors"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cleared: %v", err)
	}
}
