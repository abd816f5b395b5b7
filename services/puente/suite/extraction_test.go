package suite_test

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	"puente.dev/services/puente/suite"
)

var allProducts = []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS", "IDENTITY", "REPORTS"}

// linked is a user's AUTHORISED consent at a sandbox institution, through a connection.
type linked struct {
	consent, connection, user string
}

// link makes a user of c log in as username at a sandbox institution of country, for a consent
// of products, and waits for the consent to be AUTHORISED.
func (b *bundle) link(c client, ref, username, country string, products ...string) linked {
	b.t.Helper()
	user := b.newUser(c, ref)
	in := b.sandboxInstitution(c.Token, country)
	resp, err := consentv1.NewConsentServiceClient(b.conn).CreateConsent(bearerCtx(c.Token), &consentv1.CreateConsentRequest{
		UserId: user, InstitutionId: in.GetId(), Products: products,
	})
	require.NoError(b.t, err)
	cns := resp.GetConsent()
	con, err := connectionv1.NewConnectionServiceClient(b.conn).CreateConnection(bearerCtx(c.Token), &connectionv1.CreateConnectionRequest{
		UserId: user, InstitutionId: in.GetId(), ConsentId: cns.GetId(), Credentials: map[string]string{"username": username, "password": "pass_good"},
	})
	require.NoError(b.t, err)
	b.consentReaches(c.Token, cns.GetId(), consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED)
	return linked{consent: cns.GetId(), connection: con.GetConnection().GetId(), user: user}
}

func (b *bundle) extractions(token string) extractionv1.ExtractionServiceClient {
	return extractionv1.NewExtractionServiceClient(b.conn)
}

// extract runs an extraction of product and waits for it to finish.
func (b *bundle) extract(token, consentID, product string) *extractionv1.Extraction {
	b.t.Helper()
	x := b.extractions(token)
	resp, err := x.CreateExtraction(bearerCtx(token), &extractionv1.CreateExtractionRequest{ConsentId: consentID, Product: product})
	require.NoError(b.t, err)
	require.Equal(b.t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_PENDING, resp.GetExtraction().GetStatus())
	var got *extractionv1.Extraction
	require.Eventually(b.t, func() bool {
		r, err := x.GetExtraction(bearerCtx(token), &extractionv1.GetExtractionRequest{Id: resp.GetExtraction().GetId()})
		require.NoError(b.t, err)
		got = r.GetExtraction()
		return got.GetStatus() != extractionv1.ExtractionStatus_EXTRACTION_STATUS_PENDING
	}, 20*time.Second, 10*time.Millisecond, "the extraction never finished")
	return got
}

// syncAll pages through SyncTransactions from cursor and returns every change and the last cursor.
func (b *bundle) syncAll(token, consentID, cursor string, count int32) (added, modified []*extractionv1.Transaction, removed []*extractionv1.RemovedTransaction, next string) {
	b.t.Helper()
	for {
		r, err := b.extractions(token).SyncTransactions(bearerCtx(token), &extractionv1.SyncTransactionsRequest{ConsentId: consentID, Cursor: cursor, Count: count})
		require.NoError(b.t, err)
		require.LessOrEqual(b.t, len(r.GetAdded())+len(r.GetModified())+len(r.GetRemoved()), int(count))
		added, modified, removed = append(added, r.GetAdded()...), append(modified, r.GetModified()...), append(removed, r.GetRemoved()...)
		cursor = r.GetNextCursor()
		if !r.GetHasMore() {
			return added, modified, removed, cursor
		}
	}
}

func TestExtractionsPullEachProductAndRerunWithoutDuplicates(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	l := b.link(c, "u-1", "user_good", "BR", allProducts...)

	txns := b.extract(c.Token, l.consent, "TRANSACTIONS")
	require.Equal(t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, txns.GetStatus(), txns.GetReason())
	require.Greater(t, txns.GetAdded(), int32(40), "two accounts of about 30 transactions each")
	again := b.extract(c.Token, l.consent, "TRANSACTIONS")
	require.Equal(t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, again.GetStatus())
	require.Zero(t, again.GetAdded()+again.GetModified()+again.GetRemoved(), "re-running changes nothing")

	// Accounts, with balances (the consent covers BALANCES) and Brazil's bank code.
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, c.Token, nil)
	require.Equal(t, http.StatusOK, accs.Status, accs.Raw)
	list := accs.JSON["accounts"].([]any)
	require.Len(t, list, 2)
	for _, a := range list {
		acc := a.(map[string]any)
		require.Regexp(t, `^acc_`, acc["id"])
		require.Equal(t, "BRL", acc["currency"])
		require.Regexp(t, `^[0-9]{3}$`, acc["bank_code"])
		require.NotEmpty(t, str(acc, "balance", "current_minor"))
	}
	byUser := b.do(http.MethodGet, "/v1/accounts?user_id="+l.user, c.Token, nil)
	require.Len(t, byUser.JSON["accounts"], 2, "a user's accounts are those of their authorised consents")

	// Transactions of an account, newest first, in pages that neither skip nor repeat.
	account := list[0].(map[string]any)["id"].(string)
	var seen []string
	var last string
	token := ""
	for {
		r, err := b.extractions(c.Token).ListTransactions(bearerCtx(c.Token), &extractionv1.ListTransactionsRequest{AccountId: account, PageSize: 7, PageToken: token})
		require.NoError(t, err)
		for _, tx := range r.GetTransactions() {
			require.Equal(t, account, tx.GetAccountId())
			require.NotContains(t, seen, tx.GetId())
			if last != "" {
				require.LessOrEqual(t, tx.GetBookingDate(), last, "newest first")
			}
			last = tx.GetBookingDate()
			seen = append(seen, tx.GetId())
		}
		if token = r.GetNextPageToken(); token == "" {
			break
		}
	}
	added, _, _, _ := b.syncAll(c.Token, l.consent, "", 500)
	var inAccount int
	for _, tx := range added {
		if tx.GetAccountId() == account {
			inAccount++
		}
	}
	require.Len(t, seen, inAccount, "the list holds every transaction of the account")
	dated, err := b.extractions(c.Token).ListTransactions(bearerCtx(c.Token), &extractionv1.ListTransactionsRequest{AccountId: account, FromDate: "2025-12-01", ToDate: "2025-12-31", PageSize: 500})
	require.NoError(t, err)
	require.NotEmpty(t, dated.GetTransactions())
	for _, tx := range dated.GetTransactions() {
		require.True(t, tx.GetBookingDate() >= "2025-12-01" && tx.GetBookingDate() <= "2025-12-31", tx.GetBookingDate())
	}

	// Identity, once extracted.
	_, err = b.extractions(c.Token).GetIdentity(bearerCtx(c.Token), &extractionv1.GetIdentityRequest{ConsentId: l.consent})
	require.Equal(t, codes.NotFound, status.Code(err), "nothing before an IDENTITY extraction")
	require.Equal(t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, b.extract(c.Token, l.consent, "IDENTITY").GetStatus())
	id := b.do(http.MethodGet, "/v1/consents/"+l.consent+"/identity", c.Token, nil)
	require.Equal(t, http.StatusOK, id.Status, id.Raw)
	require.Equal(t, "CPF", str(id.JSON, "identity", "tax_id_type"))
	require.Regexp(t, `^[0-9]{11}$`, str(id.JSON, "identity", "tax_id"))

	// A cash-flow report, generated in the background.
	rep := b.do(http.MethodPost, "/v1/reports", c.Token, map[string]any{"consent_id": l.consent, "type": "REPORT_TYPE_CASH_FLOW"})
	require.Equal(t, http.StatusOK, rep.Status, rep.Raw)
	reportID := str(rep.JSON, "report", "id")
	var report *extractionv1.Report
	require.Eventually(t, func() bool {
		r, err := b.extractions(c.Token).GetReport(bearerCtx(c.Token), &extractionv1.GetReportRequest{Id: reportID})
		require.NoError(t, err)
		report = r.GetReport()
		return report.GetStatus() != extractionv1.ReportStatus_REPORT_STATUS_PENDING
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, extractionv1.ReportStatus_REPORT_STATUS_SUCCEEDED, report.GetStatus(), report.GetReason())
	cf := report.GetCashFlow()
	require.GreaterOrEqual(t, len(cf.GetMonths()), 3, "about 90 days of data")
	for _, m := range cf.GetMonths() {
		require.Equal(t, m.GetInflowMinor()-m.GetOutflowMinor(), m.GetNetMinor())
	}
	require.NotEmpty(t, cf.GetRecurringIncome(), "the salary comes twice a month")
	require.Equal(t, "SEMI_MONTHLY", cf.GetRecurringIncome()[0].GetFrequency())

	// Every extraction and the report ended in an event.
	feed := b.do(http.MethodGet, "/v1/events?types=extraction.completed&types=report.completed", c.Token, nil)
	require.Eventually(t, func() bool {
		feed = b.do(http.MethodGet, "/v1/events?types=extraction.completed&types=report.completed", c.Token, nil)
		return len(feed.JSON["events"].([]any)) == 4
	}, 20*time.Second, 20*time.Millisecond, feed.Raw)
}

func TestTransactionsSyncAcrossAddedModifiedAndRemoved(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	l := b.link(c, "u-1", "user_good", "MX", "ACCOUNTS", "TRANSACTIONS")

	// Nothing yet: an empty page and a cursor that works later.
	empty := b.do(http.MethodPost, "/v1/transactions:sync", c.Token, map[string]any{"consent_id": l.consent})
	require.Equal(t, http.StatusOK, empty.Status, empty.Raw)
	require.Empty(t, empty.JSON["added"])
	start := str(empty.JSON, "next_cursor")

	b.extract(c.Token, l.consent, "TRANSACTIONS")
	first, mod, rem, c1 := b.syncAll(c.Token, l.consent, start, 10)
	require.Empty(t, mod)
	require.Empty(t, rem)
	require.Greater(t, len(first), 40)
	pending := map[string]*extractionv1.Transaction{}
	for _, tx := range first {
		if tx.GetStatus() == extractionv1.TransactionStatus_TRANSACTION_STATUS_PENDING {
			pending[tx.GetId()] = tx
		}
	}
	require.NotEmpty(t, pending, "the last two days are pending")

	// The bank moves on three days: new pending transactions, pending ones that book under a new
	// upstream id, released holds, cleaner descriptions.
	adv := b.do(http.MethodPost, "/v1/sandbox/connections/"+l.connection+":advanceDays", c.Token, map[string]any{"days": 3})
	require.Equal(t, http.StatusOK, adv.Status, adv.Raw)
	require.Equal(t, "2026-01-04", str(adv.JSON, "bank_date"))
	x := b.extract(c.Token, l.consent, "TRANSACTIONS")
	require.Equal(t, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, x.GetStatus())

	added, modified, removed, c2 := b.syncAll(c.Token, l.consent, c1, 10)
	require.NotEmpty(t, added)
	require.NotEmpty(t, modified)
	require.NotEmpty(t, removed, "a released hold is removed")
	require.Equal(t, int(x.GetAdded()), len(added))
	require.Equal(t, int(x.GetModified()), len(modified))
	require.Equal(t, int(x.GetRemoved()), len(removed))
	var booked int
	for _, tx := range modified {
		if was, ok := pending[tx.GetId()]; ok && tx.GetStatus() == extractionv1.TransactionStatus_TRANSACTION_STATUS_BOOKED {
			booked++
			require.Equal(t, was.GetAmountMinor(), tx.GetAmountMinor())
			require.NotEqual(t, was.GetUpstreamId(), tx.GetUpstreamId(), "the upstream gave the booked transaction a new id; ours stays")
		}
	}
	require.Positive(t, booked, "a pending transaction that books is the same transaction")
	for _, r := range removed {
		require.Contains(t, pending, r.GetId(), "only pending transactions went away")
	}

	// The same cursor gives the same answer; the newest cursor gives nothing; an older one still works.
	again, againMod, againRem, _ := b.syncAll(c.Token, l.consent, c1, 500)
	require.Equal(t, txnIDs(added), txnIDs(again))
	require.Equal(t, txnIDs(modified), txnIDs(againMod))
	require.Len(t, againRem, len(removed))
	none, noneMod, noneRem, c3 := b.syncAll(c.Token, l.consent, c2, 500)
	require.Empty(t, none)
	require.Empty(t, noneMod)
	require.Empty(t, noneRem)
	require.Equal(t, c2, c3)
	all, allMod, allRem, _ := b.syncAll(c.Token, l.consent, start, 500)
	require.Empty(t, allMod, "from before the first extraction everything is new")
	require.Empty(t, allRem, "and what came and went before is not there at all")
	require.Len(t, all, len(first)+len(added)-len(removed))

	// Cursors belong to their consent.
	other := b.link(c, "u-2", "user_good", "MX", "ACCOUNTS", "TRANSACTIONS")
	bad := b.do(http.MethodPost, "/v1/transactions:sync", c.Token, map[string]any{"consent_id": other.consent, "cursor": c2})
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)
	require.Contains(t, bad.Raw, "cursor")
}

func txnIDs(ts []*extractionv1.Transaction) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.GetId())
	}
	slices.Sort(out)
	return out
}

func TestARevokedConsentReadsNothingAndItsDataIsDeleted(t *testing.T) {
	b := setupLogging(t, nil, slog.LevelDebug, func(cfg *suite.Config) { cfg.Extraction.PurgeAfter = 0 })
	c := b.newClient("acme")
	l := b.link(c, "u-1", "user_good", "CL", allProducts...)
	b.extract(c.Token, l.consent, "TRANSACTIONS")
	b.extract(c.Token, l.consent, "IDENTITY")
	count := func() (n int) {
		b.scan(`SELECT (SELECT count(*) FROM extraction.transactions WHERE consent_id = $1) + (SELECT count(*) FROM extraction.accounts WHERE consent_id = $1)
			+ (SELECT count(*) FROM extraction.identities WHERE consent_id = $1)`, []any{l.consent}, &n)
		return n
	}
	require.Positive(t, count())

	rev := b.do(http.MethodPost, "/v1/consents/"+l.consent+":revoke", c.Token, map[string]string{})
	require.Equal(t, http.StatusOK, rev.Status, rev.Raw)
	for _, r := range []response{
		b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, c.Token, nil),
		b.do(http.MethodPost, "/v1/transactions:sync", c.Token, map[string]any{"consent_id": l.consent}),
		b.do(http.MethodGet, "/v1/consents/"+l.consent+"/identity", c.Token, nil),
		b.do(http.MethodPost, "/v1/extractions", c.Token, map[string]any{"consent_id": l.consent, "product": "TRANSACTIONS"}),
		b.do(http.MethodPost, "/v1/reports", c.Token, map[string]any{"consent_id": l.consent, "type": "REPORT_TYPE_CASH_FLOW"}),
	} {
		require.Equal(t, http.StatusForbidden, r.Status, r.Raw)
		require.Contains(t, r.Raw, "CONSENT_REVOKED")
	}
	require.Empty(t, b.do(http.MethodGet, "/v1/accounts?user_id="+l.user, c.Token, nil).JSON["accounts"])

	// PUENTE_EXTRACTION_PURGE_AFTER is 0 here: the data goes as soon as the extraction service hears.
	require.Eventually(t, func() bool { return count() == 0 }, 20*time.Second, 20*time.Millisecond, "the revoked consent's data is deleted:\n%s", b.logs)
}

func TestExtractedDataBelongsToOneClient(t *testing.T) {
	b := setup(t)
	c := b.newClient("acme")
	l := b.link(c, "u-1", "user_good", "CL", allProducts...)
	b.extract(c.Token, l.consent, "TRANSACTIONS")
	x := b.extract(c.Token, l.consent, "IDENTITY")
	accs := b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, c.Token, nil)
	account := accs.JSON["accounts"].([]any)[0].(map[string]any)["id"].(string)
	rep := b.do(http.MethodPost, "/v1/reports", c.Token, map[string]any{"consent_id": l.consent, "type": "REPORT_TYPE_CASH_FLOW"})

	other := b.newClient("other")
	for _, r := range []response{
		b.do(http.MethodGet, "/v1/accounts/"+account, other.Token, nil),
		b.do(http.MethodGet, "/v1/accounts?consent_id="+l.consent, other.Token, nil),
		b.do(http.MethodGet, "/v1/transactions?account_id="+account, other.Token, nil),
		b.do(http.MethodPost, "/v1/transactions:sync", other.Token, map[string]any{"consent_id": l.consent}),
		b.do(http.MethodGet, "/v1/consents/"+l.consent+"/identity", other.Token, nil),
		b.do(http.MethodGet, "/v1/extractions/"+x.GetId(), other.Token, nil),
		b.do(http.MethodGet, "/v1/reports/"+str(rep.JSON, "report", "id"), other.Token, nil),
		b.do(http.MethodPost, "/v1/extractions", other.Token, map[string]any{"consent_id": l.consent, "product": "ACCOUNTS"}),
	} {
		require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
	}
	require.Empty(t, b.do(http.MethodGet, "/v1/accounts?user_id="+l.user, other.Token, nil).JSON["accounts"])

	// Bad input names the field.
	for path, body := range map[string]map[string]any{
		"/v1/extractions":       {"consent_id": l.consent, "product": "SECRETS"},
		"/v1/reports":           {"consent_id": l.consent},
		"/v1/transactions:sync": {"consent_id": "cns_nope"},
	} {
		r := b.do(http.MethodPost, path, c.Token, body)
		require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	}
	noFilter := b.do(http.MethodGet, "/v1/accounts", c.Token, nil)
	require.Equal(t, http.StatusBadRequest, noFilter.Status)
	require.Contains(t, noFilter.Raw, "consent_id")
	notCovered := b.link(c, "u-2", "user_good", "CL", "ACCOUNTS")
	r := b.do(http.MethodPost, "/v1/extractions", c.Token, map[string]any{"consent_id": notCovered.consent, "product": "TRANSACTIONS"})
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Contains(t, r.Raw, "PRODUCT_NOT_CONSENTED")
}
