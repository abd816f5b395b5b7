package syncfy_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	upsyncfy "puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/connection"
	connsyncfy "puente.dev/services/connection/syncfy"
	"puente.dev/services/extraction"
	"puente.dev/services/extraction/syncfy"
	syncfysim "puente.dev/services/providersim/syncfy"
)

const apiKey = "sk_test_syncfy"

// linked logs a user in at site through the connection adapter and returns the extraction
// adapter and the Link the connection service would hand it.
func linked(t *testing.T, site, username string) (*syncfysim.Server, *syncfy.Provider, extraction.Link) {
	t.Helper()
	sim := syncfysim.New(syncfysim.Options{APIKey: apiKey, TransactionsPerAccount: 620})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	api, err := upsyncfy.New(upsyncfy.Config{URL: srv.URL, APIKey: apiKey, Timeout: 2 * time.Second, RatePerSecond: 200}, nil)
	require.NoError(t, err)
	conn := connsyncfy.New(api)
	l := connection.Login{UserID: "usr_1", Institution: connection.Institution{ExternalID: site},
		Credentials: map[string]string{"username": username, "password": syncfysim.Password}}
	out, err := conn.Start(context.Background(), l)
	require.NoError(t, err)
	for out.Status == connection.Running {
		if out.State != nil {
			l.State = out.State
		}
		out, err = conn.Poll(context.Background(), l)
		require.NoError(t, err)
	}
	require.Equal(t, connection.Succeeded, out.Status)
	return sim, syncfy.New(api), extraction.Link{ConnectionID: "con_1", Succeeded: true, Provider: "syncfy", Country: "MX", State: l.State}
}

func TestAccountsAndTransactionsInMinorUnits(t *testing.T) {
	sim, p, l := linked(t, syncfysim.SiteNormal, syncfysim.Username)
	accs, err := p.Accounts(context.Background(), l)
	require.NoError(t, err)
	require.Len(t, accs, 2)
	require.Equal(t, "DEPOSITORY", accs[0].Type)
	require.Equal(t, "CHECKING", accs[0].Subtype)
	require.Equal(t, "1234", accs[0].Mask)
	require.Equal(t, int64(1523457), accs[0].Balance.Current)
	require.Equal(t, "CREDIT", accs[1].Type)
	require.Equal(t, int64(-321029), accs[1].Balance.Current)

	before := sim.Requests("/v1/transactions")
	txs, err := p.Transactions(context.Background(), l, accs[0].ID)
	require.NoError(t, err)
	require.Len(t, txs.Items, 620, "every page is read")
	require.Equal(t, 2, sim.Requests("/v1/transactions")-before, "620 transactions are two pages of 500")
	for i, tx := range txs.Items {
		want := upsyncfy.MinorUnits(syncfysim.Amount(i), "MXN")
		require.Equal(t, want, tx.AmountMinor, "transaction %d", i)
		require.Equal(t, i < 2, tx.Pending)
		require.Equal(t, "MXN", tx.Currency)
		require.GreaterOrEqual(t, tx.BookingDate, txs.From)
		require.LessOrEqual(t, tx.BookingDate, txs.To)
	}
	require.Equal(t, int64(-1029), txs.Items[0].AmountMinor, "-10.29 is -1029, not -1028")
}

func TestACredentialWithoutTransactionsCoversOnlyToday(t *testing.T) {
	_, p, l := linked(t, syncfysim.SiteCodeResponse, "test-202")
	accs, err := p.Accounts(context.Background(), l)
	require.NoError(t, err)
	txs, err := p.Transactions(context.Background(), l, accs[0].ID)
	require.NoError(t, err)
	require.Empty(t, txs.Items)
	require.Equal(t, txs.From, txs.To, "an empty list does not cover every date")
	require.NotEmpty(t, txs.From)
}

func TestFailuresCarryTheirReason(t *testing.T) {
	sim, p, l := linked(t, syncfysim.SiteNormal, syncfysim.Username)
	var pe *extraction.ProviderError

	_, err := p.Identity(context.Background(), l)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "PRODUCT_NOT_SUPPORTED", pe.Reason)
	require.False(t, pe.Temporary)

	sim.Fault("/v1/accounts", syncfysim.Garbage)
	_, err = p.Accounts(context.Background(), l)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "UPSTREAM_BAD_RESPONSE", pe.Reason)
	require.False(t, pe.Temporary)

	sim.Fault("/v1/accounts", syncfysim.Drop)
	_, err = p.Accounts(context.Background(), l)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "UPSTREAM_UNAVAILABLE", pe.Reason)
	require.True(t, pe.Temporary)

	sim.Fault("/v1/accounts", syncfysim.Hang)
	_, err = p.Accounts(context.Background(), l)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "UPSTREAM_TIMEOUT", pe.Reason)
	require.True(t, pe.Temporary)

	l.Succeeded = false
	_, err = p.Accounts(context.Background(), l)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, extraction.ReasonLoginRequired, pe.Reason)
	require.False(t, errors.Is(err, context.Canceled))
}
