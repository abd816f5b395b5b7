package boufin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	bf "puente.dev/pkg/upstream/boufin"
	"puente.dev/services/extraction"
	"puente.dev/services/extraction/boufin"
	boufinsim "puente.dev/services/providersim/boufin"
)

// linked opens a consent at the simulator and authorises it through the Connect app, as a user
// would, and returns the Link the connection side would hand over.
func linked(t *testing.T, polls int) (*boufinsim.Server, *boufin.Provider, extraction.Link) {
	t.Helper()
	sim := boufinsim.New(boufinsim.Options{APIKey: "k", ClientIDs: []string{"c"}, RunningPolls: polls})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	c, err := bf.New(bf.Config{URL: srv.URL + "/api/v1", APIKey: "k", ClientID: "c", Timeout: time.Second, PollInterval: time.Millisecond, PollAttempts: 3}, nil, nil)
	require.NoError(t, err)
	otp, err := c.TokenOTP(context.Background(), bf.PersonNatural, "11.111.111-1", "")
	require.NoError(t, err)
	u, _ := url.Parse(c.AppURL(otp.Token, "https://puente.test/cb", "st"))
	q := u.Query()
	u.RawQuery = ""
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(u.String(), url.Values{"token": {q.Get("token")}, "redirect_uri": {q.Get("redirect_uri")}, "state": {"st"},
		"entity": {"banco-andes"}, "username": {"11111111-1"}, "password": {boufinsim.Password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	st, _ := json.Marshal(map[string]string{"consentId": otp.ConsentID, "target": "11111111-1", "personType": "natural"})
	return sim, boufin.New(c), extraction.Link{Succeeded: true, Provider: "boufin", State: st, Country: "CL"}
}

func providerError(t *testing.T, err error) *extraction.ProviderError {
	t.Helper()
	var pe *extraction.ProviderError
	require.True(t, errors.As(err, &pe), "%v", err)
	return pe
}

func TestProductsAreReadInCLPWholeUnits(t *testing.T) {
	_, p, l := linked(t, 1)
	accs, err := p.Accounts(context.Background(), l)
	require.NoError(t, err)
	require.Len(t, accs, 2)
	require.Equal(t, int64(1254300), accs[0].Balance.Current, "CLP has no minor unit")
	require.Equal(t, "CREDIT", accs[1].Type)
	require.Equal(t, int64(2000000), *accs[1].Balance.Limit)
	txns, err := p.Transactions(context.Background(), l, accs[0].ID)
	require.NoError(t, err)
	require.Len(t, txns.Items, 5)
	require.Equal(t, "2026-09-01", txns.From)
	require.Equal(t, int64(-45990), txns.Items[1].AmountMinor)
	id, err := p.Identity(context.Background(), l)
	require.NoError(t, err)
	require.Equal(t, "11111111-1", id.TaxID)
}

func TestAProductStillRunningIsATemporaryFailure(t *testing.T) {
	_, p, l := linked(t, 100)
	_, err := p.Accounts(context.Background(), l)
	pe := providerError(t, err)
	require.True(t, pe.Temporary)
	require.Equal(t, "UPSTREAM_TIMEOUT", pe.Reason)
}

func TestAConsentNoLongerActiveUpstreamNeedsANewLogin(t *testing.T) {
	sim, p, l := linked(t, 0)
	require.True(t, sim.Expire(sim.Consents()[0].ConsentID))
	_, err := p.Accounts(context.Background(), l)
	pe := providerError(t, err)
	require.False(t, pe.Temporary, "retrying will not bring the consent back")
	require.Equal(t, extraction.ReasonLoginRequired, pe.Reason)
}
