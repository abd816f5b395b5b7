package powens_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
	"puente.dev/pkg/upstream/powens"
)

func client(t *testing.T, h http.HandlerFunc) *powens.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := powens.NewClient(powens.Config{URL: srv.URL + "/2.0", ClientID: "id", ClientSecret: "secret", Timeout: time.Second}, nil, nil)
	require.NoError(t, err)
	return c
}

func TestAServiceErrorsCodeIsReadButItsTextIsNotRepeated(t *testing.T) {
	c := client(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":"wrongpass","description":"Wrong password for login hunter2","message":null}`))
	})
	_, err := c.CreateConnection(context.Background(), "tok", "uuid", "openapi", map[string]string{"login": "x", "password": "hunter2"})
	e, ok := upstream.AsError(err)
	require.True(t, ok)
	require.Equal(t, "wrongpass", e.Code)
	require.Equal(t, upstream.Rejected, e.Kind)
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "tok")
}

func TestTransactionsFollowTheNextLinks(t *testing.T) {
	calls := 0
	c := client(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		require.Equal(t, "/2.0/users/me/accounts/7/transactions", r.URL.Path)
		require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		page := map[string]any{"transactions": []map[string]any{{"id": off + 1, "date": "2026-01-02", "value": -1.5}}}
		if off < 2 {
			page["_links"] = map[string]any{"next": map[string]string{"href": "/2.0/users/me/accounts/7/transactions?limit=1&offset=" + strconv.Itoa(off+1)}}
		} else {
			page["_links"] = map[string]any{"next": nil}
		}
		json.NewEncoder(w).Encode(page)
	})
	txns, err := c.Transactions(context.Background(), "tok", 7, "2026-01-01")
	require.NoError(t, err)
	require.Len(t, txns, 3)
	require.Equal(t, 3, calls)
}

func TestAWebauthURLCarriesTheDocumentedParameters(t *testing.T) {
	c := client(t, func(http.ResponseWriter, *http.Request) {})
	u := c.WebauthURL("code1", "https://puente.test/cb", "uuid-1", "openapi", "pst_x", map[string]string{"website": "par"})
	require.True(t, strings.Contains(u, "/2.0/webauth?"))
	for _, want := range []string{"client_id=id", "token=code1", "redirect_uri=https%3A%2F%2Fpuente.test%2Fcb", "connector_uuid=uuid-1", "source=openapi", "state=pst_x", "website=par"} {
		require.Contains(t, u, want)
	}
	require.NotContains(t, u, "secret")
}
