package powens_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	api "puente.dev/pkg/upstream/powens"
	"puente.dev/services/connection/powens"
)

func TestWebhooksNameTheRefsALoginHolds(t *testing.T) {
	p := powens.New(nil, powens.Options{})
	refs := p.Refs(api.Session{User: 12, Connection: 34, Temporary: "tmp"}.Encode())
	require.ElementsMatch(t, []string{"user:12", "connection:34"}, refs)
	require.Empty(t, p.Refs([]byte("not a session")))

	for _, tc := range []struct {
		name, eventType, body string
		want                  []string
	}{
		{"CONNECTION_SYNCED names its connection and user", "CONNECTION_SYNCED",
			`{"user":{"id":12},"connection":{"id":34,"state":null,"accounts":[{"id":5,"id_connection":34}]}}`, []string{"connection:34", "user:12"}},
		{"ACCOUNTS_FETCHED too", "", `{"user":{"id":12},"connection":{"id":34,"accounts":[]}}`, []string{"connection:34", "user:12"}},
		{"CONNECTION_DELETED names a connection", "CONNECTION_DELETED", `{"id":34}`, []string{"connection:34"}},
		{"USER_DELETED names a user", "USER_DELETED", `{"id":12}`, []string{"user:12"}},
		{"a bare id of unknown type names nothing", "", `{"id":34}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.ConnectionsFor(context.Background(), tc.eventType, []byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := p.ConnectionsFor(context.Background(), "CONNECTION_SYNCED", []byte(`<xml/>`))
	require.Error(t, err)
}
