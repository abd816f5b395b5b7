package suite_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every secret the suite handles is used in earnest, then the captured debug logs and every later
// response are searched for it.
func TestSecretsNeverReachLogsOrLaterResponses(t *testing.T) {
	b := setup(t)

	created := b.do(http.MethodPost, "/v1/admin/clients", b.adminToken, map[string]any{"name": "acme", "redirect_uris": []string{"https://app.example/done"}, "request_id": "c-1"})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	clientID, firstSecret := str(created.JSON, "client", "id"), str(created.JSON, "api_key", "secret")

	grant := form(b, url.Values{"grant_type": {"client_credentials"}}, clientID, firstSecret)
	require.Equal(t, http.StatusOK, grant.Status)
	access, refresh := str(grant.JSON, "access_token"), str(grant.JSON, "refresh_token")
	rotated := form(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, clientID, firstSecret)
	require.Equal(t, http.StatusOK, rotated.Status)
	refresh2 := str(rotated.JSON, "refresh_token")

	key := b.do(http.MethodPost, "/v1/api-keys", access, map[string]string{"name": "second"})
	secondSecret := str(key.JSON, "api_key", "secret")
	user := b.do(http.MethodPost, "/v1/users", access, map[string]any{"external_ref": "maria.silva@example.com", "kind": "USER_KIND_NATURAL",
		"tax_id": map[string]string{"type": "TAX_ID_TYPE_CPF", "value": "529.982.247-25"}})
	userID := str(user.JSON, "user", "id")
	link := b.do(http.MethodPost, "/v1/link-tokens", access, map[string]any{"user_id": userID, "products": []string{"ACCOUNTS"}, "country": "CL"})
	linkToken := str(link.JSON, "link_token")
	session := b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": linkToken})
	sessionToken := str(session.JSON, "session_token")
	task := b.do(http.MethodPost, "/v1/task-tokens", access, map[string]any{"user_id": userID})
	taskToken := str(task.JSON, "task_token")
	// Failed attempts carry secrets too: a mistyped one must not be logged either.
	typo := firstSecret[:len(firstSecret)-3] + "xyz"
	form(b, url.Values{"grant_type": {"client_credentials"}}, clientID, typo)
	b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": linkToken})

	secrets := map[string]string{
		"first API key secret": firstSecret, "second API key secret": secondSecret, "mistyped secret": typo,
		"access token": access, "refresh token": refresh, "rotated refresh token": refresh2,
		"link token": linkToken, "widget session": sessionToken, "task token": taskToken,
		"admin token": b.adminToken, "hash key": b.cfg.Authtoken.HashKey,
		"encryption key": strings.SplitN(b.cfg.Authtoken.EncryptionKeys, ":", 2)[1],
	}
	for name, s := range secrets {
		require.NotEmpty(t, s, name)
	}

	// Later reads show no secret.
	later := []response{
		b.do(http.MethodGet, "/v1/api-keys", access, nil),
		b.do(http.MethodGet, "/v1/admin/clients", b.adminToken, nil),
		b.do(http.MethodGet, "/v1/admin/clients/"+clientID, b.adminToken, nil),
		b.do(http.MethodGet, "/v1/users/"+userID, access, nil),
	}
	for _, r := range later {
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.NotContains(t, r.Raw, "psk_")
		for name, s := range secrets {
			require.NotContains(t, r.Raw, s, "%s in a later response", name)
		}
	}
	require.Contains(t, later[0].Raw, firstSecret[len(firstSecret)-4:], "keys are told apart by a hint")

	logs := b.logs.String()
	for _, personal := range []string{"maria.silva@example.com", "529.982.247-25", "52998224725"} {
		require.NotContains(t, logs, personal, "personal data stays out of the logs")
	}
	require.Contains(t, logs, "CreateToken", "the debug request log ran, so the search below means something")
	require.Contains(t, logs, `"level":"DEBUG"`)
	for name, s := range secrets {
		require.NotContains(t, logs, s, "%s in the logs", name)
	}
}
