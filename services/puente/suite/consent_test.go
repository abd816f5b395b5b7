package suite_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
)

// consentReaches waits until the consent has status want (the connection service settles it in
// the background) and returns it.
func (b *bundle) consentReaches(token, id string, want consentv1.ConsentStatus) *consentv1.Consent {
	b.t.Helper()
	var got *consentv1.Consent
	require.Eventually(b.t, func() bool {
		resp, err := consentv1.NewConsentServiceClient(b.conn).GetConsent(bearerCtx(token), &consentv1.GetConsentRequest{Id: id})
		require.NoError(b.t, err)
		got = resp.GetConsent()
		return got.GetStatus() == want
	}, 20*time.Second, 20*time.Millisecond, "consent never reached %s", want)
	return got
}

func (b *bundle) newConsent(token, user, institution string) *consentv1.Consent {
	b.t.Helper()
	resp, err := consentv1.NewConsentServiceClient(b.conn).CreateConsent(bearerCtx(token), &consentv1.CreateConsentRequest{
		UserId: user, InstitutionId: institution, Products: []string{"ACCOUNTS", "TRANSACTIONS"},
	})
	require.NoError(b.t, err)
	return resp.GetConsent()
}

func TestAConsentIsAuthorisedWhenItsConnectionSucceeds(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	cns := b.newConsent(c.Token, user, in.GetId())
	require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION, cns.GetStatus())

	r := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{
		"user_id": user, "institution_id": in.GetId(), "consent_id": cns.GetId(),
		"credentials": map[string]string{"username": "user_otp", "password": "pass_good"},
	})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	id := str(r.JSON, "connection", "id")
	waiting := b.watchUntil(c.Token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_WAITING_MFA)
	require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION,
		b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION).GetStatus())
	b.do(http.MethodPost, "/v1/connections/"+id+":submitMfa", c.Token, map[string]any{"challenge_id": waiting.GetMfa().GetId(), "answers": map[string]string{"otp": "123456"}})
	b.watchUntil(c.Token, id, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)

	got := b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	require.Equal(t, id, got.GetConnectionId())
	var history []consentv1.ConsentStatus
	for _, h := range got.GetHistory() {
		history = append(history, h.GetStatus())
	}
	require.Equal(t, []consentv1.ConsentStatus{consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED}, history)

	// Revoking is final and idempotent.
	rev := b.do(http.MethodPost, "/v1/consents/"+cns.GetId()+":revoke", c.Token, map[string]string{})
	require.Equal(t, http.StatusOK, rev.Status, rev.Raw)
	require.Equal(t, "CONSENT_STATUS_REVOKED", str(rev.JSON, "consent", "status"))
	again := b.do(http.MethodPost, "/v1/consents/"+cns.GetId()+":revoke", c.Token, map[string]string{})
	require.Equal(t, http.StatusOK, again.Status)
	require.Equal(t, "CONSENT_STATUS_REVOKED", str(again.JSON, "consent", "status"))
}

func TestADeniedRedirectRejectsItsConsent(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	list, err := connectionv1.NewInstitutionServiceClient(b.conn).ListInstitutions(bearerCtx(c.Token), &connectionv1.ListInstitutionsRequest{Country: "CL"})
	require.NoError(t, err)
	var redirect string
	for _, in := range list.GetInstitutions() {
		if in.GetAuthMechanism() == connectionv1.AuthMechanism_AUTH_MECHANISM_REDIRECT {
			redirect = in.GetId()
		}
	}
	cns := b.newConsent(c.Token, user, redirect)
	con, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: redirect, ConsentId: cns.GetId(),
	})
	require.NoError(t, err)
	authURL, err := url.Parse(con.GetConnection().GetAuthorizationUrl())
	require.NoError(t, err)
	back := b.do(http.MethodGet, "/v1/connections:callback?result=deny&state="+url.QueryEscape(authURL.Query().Get("state")), "", nil)
	require.Equal(t, http.StatusOK, back.Status, back.Raw)
	b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_REJECTED)
}

func TestConsentsBelongToOneClientAndOneUser(t *testing.T) {
	b := setup(t)
	alice, bob := b.newClient("alice"), b.newClient("bob")
	in := b.sandboxInstitution(alice.Token, "CL")
	user, other := b.newUser(alice, "a-1"), b.newUser(alice, "a-2")
	cns := b.newConsent(alice.Token, user, in.GetId())

	_, err := consentv1.NewConsentServiceClient(b.conn).GetConsent(bearerCtx(bob.Token), &consentv1.GetConsentRequest{Id: cns.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, http.StatusNotFound, b.do(http.MethodPost, "/v1/consents/"+cns.GetId()+":revoke", bob.Token, map[string]string{}).Status)
	require.NotContains(t, b.do(http.MethodGet, "/v1/consents", bob.Token, nil).Raw, cns.GetId())

	// A consent of one user cannot be linked to another user's connection.
	r := b.do(http.MethodPost, "/v1/connections", alice.Token, map[string]any{
		"user_id": other, "institution_id": in.GetId(), "consent_id": cns.GetId(),
		"credentials": map[string]string{"username": "user_good", "password": "pass_good"},
	})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"field":"consent_id"`)

	// Only services may settle consents.
	_, err = consentv1.NewConsentServiceClient(b.conn).AuthoriseConsent(bearerCtx(alice.Token), &consentv1.AuthoriseConsentRequest{
		ClientId: alice.ID, Id: cns.GetId(), ConnectionId: "con_01JD0000000000000000000000", Authorised: true,
	})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}

func TestALinkTokenCarriesAConsentTheWidgetCompletes(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	cns := b.newConsent(c.Token, user, in.GetId())

	lt := b.do(http.MethodPost, "/v1/link-tokens", c.Token, map[string]any{"user_id": user, "products": []string{"ACCOUNTS"}, "country": "CL", "consent_id": cns.GetId()})
	require.Equal(t, http.StatusOK, lt.Status, lt.Raw)
	ex := b.do(http.MethodPost, "/v1/link-tokens:exchange", "", map[string]string{"link_token": str(lt.JSON, "link_token")})
	require.Equal(t, cns.GetId(), str(ex.JSON, "consent_id"))
	session := str(ex.JSON, "session_token")

	created := b.do(http.MethodPost, "/v1/connections", session, map[string]any{"institution_id": in.GetId(), "credentials": map[string]string{"username": "user_good", "password": "pass_good"}})
	require.Equal(t, http.StatusOK, created.Status, created.Raw)
	require.Equal(t, cns.GetId(), str(created.JSON, "connection", "consent_id"), "the session's consent is the one the connection completes")
	b.watchUntil(c.Token, str(created.JSON, "connection", "id"), connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED)
	b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
}

func TestAConsentExpiresAtItsTime(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	user := b.newUser(c, "u-1")
	in := b.sandboxInstitution(c.Token, "CL")
	resp, err := consentv1.NewConsentServiceClient(b.conn).CreateConsent(bearerCtx(c.Token), &consentv1.CreateConsentRequest{
		UserId: user, InstitutionId: in.GetId(), Products: []string{"ACCOUNTS"}, ExpireTime: timestamppb.New(time.Now().Add(2 * time.Second)),
	})
	require.NoError(t, err)
	expired := b.consentReaches(c.Token, resp.GetConsent().GetId(), consentv1.ConsentStatus_CONSENT_STATUS_EXPIRED)
	require.Len(t, expired.GetHistory(), 2)

	// An expired consent cannot be linked any more.
	r := b.do(http.MethodPost, "/v1/connections", c.Token, map[string]any{
		"user_id": user, "institution_id": in.GetId(), "consent_id": expired.GetId(),
		"credentials": map[string]string{"username": "user_good", "password": "pass_good"},
	})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
}
