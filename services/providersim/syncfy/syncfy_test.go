package syncfy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"puente.dev/services/providersim/syncfy"
)

const key = "sk_test"

type env struct {
	Code     int             `json:"code"`
	Status   bool            `json:"status"`
	Message  *string         `json:"message"`
	Response json.RawMessage `json:"response"`
}

func call(t *testing.T, srv *httptest.Server, method, path, auth string, body any, out any) env {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if method == http.MethodDelete {
		req.Method = http.MethodPost
		req.Header.Set("X-Http-Method-Override", "DELETE")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e env
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: not the envelope: %v", method, path, err)
	}
	if e.Code != resp.StatusCode {
		t.Fatalf("%s %s: envelope code %d, HTTP %d", method, path, e.Code, resp.StatusCode)
	}
	if out != nil && e.Status {
		if err := json.Unmarshal(e.Response, out); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestAJobAdvancesOneStepPerStatusRead(t *testing.T) {
	sim := syncfy.New(syncfy.Options{APIKey: key})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	if e := call(t, srv, http.MethodPost, "/v1/users", "api_key api_key=wrong", map[string]string{"name": "x"}, nil); e.Code != http.StatusUnauthorized || e.Status {
		t.Fatalf("a wrong API key is refused: %+v", e)
	}
	var u struct {
		ID string `json:"id_user"`
	}
	call(t, srv, http.MethodPost, "/v1/users", "api_key api_key="+key, map[string]string{"id_external": "usr_1", "name": "usr_1"}, &u)
	var found []map[string]any
	call(t, srv, http.MethodGet, "/v1/users?id_external=usr_1", "api_key api_key="+key, nil, &found)
	if len(found) != 1 || found[0]["id_user"] != u.ID {
		t.Fatalf("find by id_external: %v", found)
	}
	var s struct {
		Token string `json:"token"`
	}
	call(t, srv, http.MethodPost, "/v1/sessions", "api_key api_key="+key, map[string]string{"id_user": u.ID}, &s)
	if len(s.Token) != 64 {
		t.Fatalf("token %q is not 64 hex chars", s.Token)
	}
	tok := "TOKEN token=" + s.Token
	var j struct {
		Cred   string `json:"id_credential"`
		Status string `json:"status"`
		Twofa  string `json:"twofa"`
	}
	call(t, srv, http.MethodPost, "/v1/credentials", tok, map[string]any{"id_site": syncfy.SiteToken,
		"credentials": map[string]string{"username": "test", "password": "test"}}, &j)
	read := func() []int {
		var hist []struct {
			Code int `json:"code"`
		}
		req, _ := http.NewRequest(http.MethodGet, j.Status, nil)
		req.Header.Set("Authorization", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e env
		json.NewDecoder(resp.Body).Decode(&e)
		json.Unmarshal(e.Response, &hist)
		var codes []int
		for _, h := range hist {
			codes = append(codes, h.Code)
		}
		return codes
	}
	for _, want := range [][]int{{100, 101}, {100, 101, 410}, {100, 101, 410}} {
		if got := read(); !equal(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
	}
	if e := call(t, srv, http.MethodPost, j.Twofa[len(srv.URL):], tok, map[string]any{"twofa": map[string]string{"token": syncfy.Token}}, nil); !e.Status {
		t.Fatalf("twofa refused: %+v", e)
	}
	if e := call(t, srv, http.MethodPost, j.Twofa[len(srv.URL):], tok, map[string]any{"twofa": map[string]string{"token": syncfy.Token}}, nil); e.Code != http.StatusBadRequest {
		t.Fatalf("a second answer is refused: %+v", e)
	}
	for _, want := range [][]int{{100, 101, 410, 103}, {100, 101, 410, 103, 102}, {100, 101, 410, 103, 102, 200}, {100, 101, 410, 103, 102, 200}} {
		if got := read(); !equal(got, want) {
			t.Fatalf("history %v, want %v", got, want)
		}
	}
	var accs []map[string]any
	call(t, srv, http.MethodGet, "/v1/accounts?id_credential="+j.Cred, tok, nil, &accs)
	if len(accs) != 2 {
		t.Fatalf("accounts: %v", accs)
	}
	var txs []map[string]any
	call(t, srv, http.MethodGet, "/v1/transactions?id_credential="+j.Cred+"&id_account="+accs[0]["id_account"].(string)+"&skip=25&limit=10", tok, nil, &txs)
	if len(txs) != 5 {
		t.Fatalf("skip 25 of 30: %d transactions", len(txs))
	}
	if e := call(t, srv, http.MethodDelete, "/v1/credentials/"+j.Cred, tok, nil, nil); !e.Status {
		t.Fatalf("X-Http-Method-Override DELETE: %+v", e)
	}
	sim.ExpireSessions()
	if e := call(t, srv, http.MethodGet, "/v1/accounts?id_credential="+j.Cred, tok, nil, nil); e.Code != http.StatusUnauthorized {
		t.Fatalf("an expired session is refused: %+v", e)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
