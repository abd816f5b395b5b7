package powens_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	api "puente.dev/pkg/upstream/powens"
	"puente.dev/services/connection"
	connpowens "puente.dev/services/connection/powens"
	"puente.dev/services/extraction"
	"puente.dev/services/extraction/powens"
	powenssim "puente.dev/services/providersim/powens"
)

type fixture struct {
	sim  *powenssim.Server
	prov *powens.Provider
	link extraction.Link
}

// setup links a user through the connection adapter, sharing the first `shared` accounts.
func setup(t *testing.T, shared int) fixture {
	t.Helper()
	sim := powenssim.New(powenssim.Options{ClientID: "puente", ClientSecret: "s3cret", Transactions: 30})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	c, err := api.NewClient(api.Config{URL: srv.URL, ClientID: "puente", ClientSecret: "s3cret", Timeout: 300 * time.Millisecond}, nil, nil)
	require.NoError(t, err)

	conn := connpowens.New(c, connpowens.Options{})
	ctx := context.Background()
	ins, err := conn.Institutions(ctx)
	require.NoError(t, err)
	var in connection.Institution
	for _, i := range ins {
		if i.ExternalID == powenssim.TestConnectorUUID {
			in = i
		}
	}
	l := connection.Login{Institution: in, Credentials: map[string]string{"login": "erin", "password": "x"}}
	out, err := conn.Start(ctx, l)
	require.NoError(t, err)
	answers := map[string]string{}
	for i, f := range out.Challenge.Fields {
		answers[f.Name] = connpowens.Skip
		if i < shared {
			answers[f.Name] = connpowens.Share
		}
	}
	l.State = out.State
	done, err := conn.Answer(ctx, l, answers)
	require.NoError(t, err)
	require.Equal(t, connection.Succeeded, done.Status)
	return fixture{sim: sim, prov: powens.New(c, powens.Options{}), link: extraction.Link{Succeeded: true, Provider: "powens", State: done.State}}
}

func TestOnlyTheSharedAccountsAreReadWithThePermanentToken(t *testing.T) {
	f := setup(t, 2)
	ctx := context.Background()
	accs, err := f.prov.Accounts(ctx, f.link)
	require.NoError(t, err)
	require.Len(t, accs, 2)
	require.Equal(t, "Compte Chèque", accs[0].Name)
	require.Equal(t, "DEPOSITORY", accs[0].Type)
	require.Equal(t, "CHECKING", accs[0].Subtype)
	require.Equal(t, "EUR", accs[0].Currency)
	require.Equal(t, int64(152345), accs[0].Balance.Current, "1523.45 EUR in cents")
	require.Equal(t, "0143", accs[0].Mask)
	require.Equal(t, "CREDIT", accs[1].Type)
	require.Equal(t, int64(-12030), accs[1].Balance.Current)

	txns, err := f.prov.Transactions(ctx, f.link, accs[0].ID)
	require.NoError(t, err)
	require.Len(t, txns.Items, 30)
	require.NotEmpty(t, txns.From)
	pending := 0
	for _, tx := range txns.Items {
		require.Equal(t, "EUR", tx.Currency)
		require.Regexp(t, `^\d{4}-\d{2}-\d{2}$`, tx.BookingDate)
		require.NotZero(t, tx.AmountMinor)
		if tx.Pending {
			pending++
		}
	}
	require.Equal(t, 2, pending, "coming transactions are pending")

	temporary, permanent := f.sim.DataCalls()
	require.Zero(t, temporary, "data is read with the permanent token only")
	require.Positive(t, permanent)
}

func TestAnAccountNotSharedIsNotRead(t *testing.T) {
	f := setup(t, 1)
	_, err := f.prov.Transactions(context.Background(), f.link, "999999")
	var pe *extraction.ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "ACCOUNT_NOT_FOUND", pe.Reason)
}

func TestIdentityIsNotAProductOfPowens(t *testing.T) {
	f := setup(t, 1)
	_, err := f.prov.Identity(context.Background(), f.link)
	var pe *extraction.ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "PRODUCT_NOT_SUPPORTED", pe.Reason)
}

func TestFailuresAreReportedAsReasons(t *testing.T) {
	for _, tc := range []struct {
		name      string
		route     string
		fault     powenssim.Fault
		reason    string
		temporary bool
	}{
		{"garbage", "GET /users/me/accounts", powenssim.Garbage, "UPSTREAM_BAD_RESPONSE", false},
		{"a hang", "GET /users/me/accounts", powenssim.Hang, "UPSTREAM_TIMEOUT", true},
		{"a drop", "GET /users/me/accounts", powenssim.Drop, "UPSTREAM_UNAVAILABLE", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, 1)
			f.sim.Fault(tc.route, tc.fault)
			_, err := f.prov.Accounts(context.Background(), f.link)
			var pe *extraction.ProviderError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.reason, pe.Reason)
			require.Equal(t, tc.temporary, pe.Temporary)
		})
	}
	t.Run("a token Powens no longer knows", func(t *testing.T) {
		f := setup(t, 1)
		s, err := api.ParseSession(f.link.State)
		require.NoError(t, err)
		s.Token = "revoked"
		f.link.State = s.Encode()
		_, err = f.prov.Accounts(context.Background(), f.link)
		var pe *extraction.ProviderError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, extraction.ReasonLoginRequired, pe.Reason)
	})
	t.Run("a login that never succeeded", func(t *testing.T) {
		f := setup(t, 1)
		_, err := f.prov.Accounts(context.Background(), extraction.Link{State: []byte(`{"id_user":3,"temp_token":"t"}`)})
		var pe *extraction.ProviderError
		require.True(t, errors.As(err, &pe))
		require.Equal(t, extraction.ReasonLoginRequired, pe.Reason)
	})
}

func TestAmountsAndAccountTypes(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		prec int
		want int64
	}{{1523.45, 2, 152345}, {-0.1, 2, -10}, {0.29, 2, 29}, {1234, 0, 1234}, {1.2345, 3, 1235}, {-42.105, 2, -4211}} {
		got, err := powens.Minor(tc.v, tc.prec)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v at %d", tc.v, tc.prec)
	}
	for in, want := range map[string][2]string{
		"checking": {"DEPOSITORY", "CHECKING"}, "savings": {"DEPOSITORY", "SAVINGS"}, "card": {"CREDIT", "CREDIT_CARD"},
		"mortgage": {"LOAN", "MORTGAGE"}, "lifeinsurance": {"INVESTMENT", "LIFEINSURANCE"}, "pea": {"INVESTMENT", "PEA"},
		"unknown": {"OTHER", "UNKNOWN"},
	} {
		typ, sub := powens.AccountType(in)
		require.Equal(t, want, [2]string{typ, sub}, in)
	}
	at, err := powens.ParseDateTime("2026-07-01 12:00:00")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC), at, "Paris summer time is UTC+2")
}
