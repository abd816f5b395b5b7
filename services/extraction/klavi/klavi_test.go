package klavi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
	wire "puente.dev/pkg/upstream/klavi"
	"puente.dev/services/extraction"
	"puente.dev/services/extraction/klavi"
	klavisim "puente.dev/services/providersim/klavi"
)

const (
	accessKey = "ak_test_klavi"
	secretKey = "sk_test_klavi"
	cpf       = "12345678909"
	cnpj      = "11222333000181"
	clientID  = "cli_1"
)

type testBundle struct {
	sim *klavisim.Server
	api *wire.Client
	p   *klavi.Provider
}

// setup starts the simulator, holding its webhooks until a test flushes them to a receiver that
// accepts everything: the tests hand the bodies to Documents themselves, as the webhook service
// does once it has verified them.
func setup(t *testing.T) *testBundle {
	t.Helper()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	sim := klavisim.New(klavisim.Options{AccessKey: accessKey, SecretKey: secretKey, EventWebhookURL: recv.URL, ProductWebhookURL: recv.URL, HoldWebhooks: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close(); recv.Close() })
	api, err := wire.New(wire.Config{URL: srv.URL, AccessKey: accessKey, SecretKey: secretKey, RatePerSecond: 100, Timeout: 2 * time.Second}, wire.Options{})
	require.NoError(t, err)
	return &testBundle{sim: sim, api: api, p: klavi.New(api)}
}

// consent creates an AUTHORISED consent at Mock Bank for a person (taxID of 11 digits) or a
// company (14), and returns the Link the extraction service would hand the adapter, without
// documents yet.
func (b *testBundle) consent(t *testing.T, taxID, consentID string) extraction.Link {
	t.Helper()
	ctx := context.Background()
	business := len(taxID) == 14
	lr, cr := wire.LinkRequest{PersonalTaxID: taxID}, wire.ConsentRequest{PersonalTaxID: taxID}
	if business {
		lr, cr = wire.LinkRequest{BusinessTaxID: taxID}, wire.ConsentRequest{BusinessTaxID: taxID}
	}
	link, err := b.api.CreateLink(ctx, lr)
	require.NoError(t, err)
	cr.ExternalTrackID, cr.InstitutionCode, cr.RedirectURL, cr.ValidityPeriod = consentID, klavisim.MockBank, "https://app.example/back", 12
	c, err := b.api.CreateConsent(ctx, link.LinkToken, cr)
	require.NoError(t, err)
	b.sim.SetConsentStatus(c.ConsentID, "AUTHORISED")
	return extraction.Link{
		ConnectionID: "con_" + consentID, Succeeded: true, Provider: klavi.Name, Country: "BR", ClientID: clientID, ConsentID: consentID,
		State: state(t, link.LinkID, c.ConsentID, taxID, business),
	}
}

func state(t *testing.T, linkID, consentID, taxID string, business bool) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"linkId": linkID, "consentId": consentID, "business": business, "taxId": taxID})
	require.NoError(t, err)
	return b
}

// pushed asks for l's report, delivers the simulator's webhooks and returns l with the documents
// Documents made of them, as the extraction service keeps them. With kinds, only the webhooks of
// those kinds ("report", "event") are kept.
func (b *testBundle) pushed(t *testing.T, l extraction.Link, kinds ...string) extraction.Link {
	t.Helper()
	ctx := context.Background()
	_, err := b.p.Accounts(ctx, l)
	requireReason(t, err, klavi.ReasonReportPending, true)
	b.sim.Flush(ctx)
	l.Documents = map[string]extraction.Document{}
	for _, d := range b.sim.Deliveries() {
		if len(kinds) > 0 && !slices.Contains(kinds, d.Kind) {
			continue
		}
		docs, err := b.p.Documents(ctx, "", d.Body)
		require.NoError(t, err, "%s webhook %s", d.Kind, d.Name)
		for _, doc := range docs {
			require.Equal(t, clientID, doc.ClientID)
			require.Equal(t, l.ConsentID, doc.ConsentID)
			l.Documents[doc.Kind] = extraction.Document{Kind: doc.Kind, Body: doc.Body, ReceivedAt: time.Now()}
		}
	}
	return l
}

func requireReason(t *testing.T, err error, reason string, temporary bool) {
	t.Helper()
	var pe *extraction.ProviderError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, reason, pe.Reason)
	require.Equal(t, temporary, pe.Temporary, "temporary")
}

func TestAPersonsReportBecomesAccountsTransactionsAndIdentity(t *testing.T) {
	b := setup(t)
	l := b.pushed(t, b.consent(t, cpf, "csn_pf"))
	require.Contains(t, l.Documents, "pf_checking_account")
	ctx := context.Background()

	accs, err := b.p.Accounts(ctx, l)
	require.NoError(t, err)
	require.Len(t, accs, 1)
	a := accs[0]
	require.Equal(t, "999-0001-678909-0", a.ID, "compe, branch, number and check digit name the account")
	require.Equal(t, "DEPOSITORY", a.Type)
	require.Equal(t, "CHECKING", a.Subtype)
	require.Equal(t, "Mock Bank individual", a.Name)
	require.Equal(t, "8909", a.Mask)
	require.Equal(t, "BRL", a.Currency)
	require.Equal(t, "999", a.BankCode)
	require.NotNil(t, a.Balance.Available)
	require.Equal(t, int64(152046), *a.Balance.Available, "1520.4550 rounds half away from zero")
	require.Equal(t, int64(152046+100004), a.Balance.Current, "blocked and automatically invested amounts are the account's too")
	require.False(t, a.Balance.AsOf.IsZero())

	txs, err := b.p.Transactions(ctx, l, a.ID)
	require.NoError(t, err)
	require.Len(t, txs.Items, 3)
	byID := map[string]extraction.UpstreamTransaction{}
	for _, tx := range txs.Items {
		byID[tx.ID] = tx
		require.Equal(t, "BRL", tx.Currency)
		require.Equal(t, tx.BookingDate, tx.ValueDate)
		require.GreaterOrEqual(t, tx.BookingDate, txs.From)
		require.LessOrEqual(t, tx.BookingDate, txs.To)
	}
	require.Equal(t, int64(350000), byID["tx-678909-1"].AmountMinor, "a CREDITO is money in")
	require.Equal(t, "SALARIO", byID["tx-678909-1"].Description)
	require.Equal(t, int64(-4291), byID["tx-678909-2"].AmountMinor, "a DEBITO is money out")
	require.Equal(t, "CARTAO", byID["tx-678909-2"].Category)
	require.Equal(t, int64(-12000), byID["tx-678909-3"].AmountMinor)
	require.Equal(t, time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly), txs.From)
	require.Equal(t, time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), txs.To)

	id, err := b.p.Identity(ctx, l)
	require.NoError(t, err)
	require.Equal(t, "CPF", id.TaxIDType)
	require.Equal(t, cpf, id.TaxID)
	require.Equal(t, []string{"Titular 678909"}, id.Names)

	require.Equal(t, 1, b.sim.Calls("/data/v1/personal/user-data"), "a report present is read, not asked for again")
}

func TestACompanysReportIsAskedForAtTheBusinessEndpoint(t *testing.T) {
	b := setup(t)
	l := b.pushed(t, b.consent(t, cnpj, "csn_pj"))
	require.Contains(t, l.Documents, "pj_checking_account")
	require.Equal(t, 1, b.sim.Calls("/data/v1/business/user-data"))
	require.Zero(t, b.sim.Calls("/data/v1/personal/user-data"))

	accs, err := b.p.Accounts(context.Background(), l)
	require.NoError(t, err)
	require.Len(t, accs, 1)
	require.Equal(t, "999-0001-000181-0", accs[0].ID)
	id, err := b.p.Identity(context.Background(), l)
	require.NoError(t, err)
	require.Equal(t, "CNPJ", id.TaxIDType)
	require.Equal(t, cnpj, id.TaxID)
}

func TestAReportIsAskedForOnceWhileItIsAwaited(t *testing.T) {
	b := setup(t)
	l := b.consent(t, cpf, "csn_wait")
	ctx := context.Background()
	for range 3 {
		_, err := b.p.Transactions(ctx, l, "999-0001-678909-0")
		requireReason(t, err, klavi.ReasonReportPending, true)
	}
	require.Equal(t, 1, b.sim.Calls("/data/v1/personal/user-data"), "each request starts a paid report")
}

func TestAFailedRequestIsAskedForAgainOnTheNextRead(t *testing.T) {
	b := setup(t)
	l := b.consent(t, cpf, "csn_retry")
	ctx := context.Background()
	b.sim.Fault("/data/v1/personal/user-data", klavisim.Unavailable)
	_, err := b.p.Accounts(ctx, l)
	requireReason(t, err, string(upstream.Unavailable), true)

	b.sim.Fault("/data/v1/personal/user-data", klavisim.NoFault)
	_, err = b.p.Accounts(ctx, l)
	requireReason(t, err, klavi.ReasonReportPending, true)
	require.Equal(t, 2, b.sim.Calls("/data/v1/personal/user-data"), "a request that failed does not hold back the next")
}

func TestAReportRequestKlaviRefusesHasTheBusinessErrorsReason(t *testing.T) {
	b := setup(t)
	l := b.consent(t, cpf, "csn_revoked")
	var s map[string]any
	require.NoError(t, json.Unmarshal(l.State, &s))
	b.sim.SetConsentStatus(s["consentId"].(string), "REVOKED")
	_, err := b.p.Accounts(context.Background(), l)
	requireReason(t, err, extraction.ReasonLoginRequired, false) // 4008: no Open Finance consent
}

func TestAFailedReportEndsTheReadsWaitingForIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string // the webhook kept: "report" or "event"
	}{
		{"from the report webhook", "report"},
		{"from the product_generated_failed event", "event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			l := b.pushed(t, b.consent(t, klavisim.FailingReports, "csn_fail"), tc.kind)
			require.Contains(t, l.Documents, "pf_checking_account")
			_, err := b.p.Accounts(context.Background(), l)
			requireReason(t, err, "INSTITUTION_UNAVAILABLE", false)
			require.Equal(t, 1, b.sim.Calls("/data/v1/personal/user-data"), "a failed report is an answer, not a reason to ask again")
		})
	}
}

// report is a hand-made checking-account report with one account and the given transactions.
func report(code int, txns ...map[string]any) []byte {
	amount := func(v string) map[string]string { return map[string]string{"amount": v, "currency": "BRL"} }
	b, _ := json.Marshal(map[string]any{
		"code": code, "message": "ok", "productName": "pf_checking_account", "productReportTime": "2026-03-04T05:06:07", "enquiryCpf": cpf,
		"externalInfo": map[string]string{"client_id": clientID, "consent_id": "csn_doc"},
		"checkingAccounts": []map[string]any{{
			"brandName": "Banco Dois", "compeCode": "002", "branchCode": "0420", "number": "12", "checkDigit": "X", "subtype": "CONTA_CONJUNTA",
			"civilName": "Ana", "balances": map[string]any{"availableAmount": amount("10.00")}, "transactionDetails": txns,
		}},
	})
	return b
}

func withReport(body []byte) extraction.Link {
	return extraction.Link{Succeeded: true, Provider: klavi.Name, ClientID: clientID, ConsentID: "csn_doc",
		State:     []byte(`{"linkId":"lnk_1","consentId":"kc_1","business":false,"taxId":"` + cpf + `"}`),
		Documents: map[string]extraction.Document{"pf_checking_account": {Kind: "pf_checking_account", Body: body}}}
}

func TestReportDocumentsMapFieldByField(t *testing.T) {
	p := klavi.New(nil) // every read below is answered by the document: no call to Klavi
	txn := func(id, date, kind, value string) map[string]any {
		return map[string]any{"transactionId": id, "transactionDate": date, "creditDebitType": kind, "transactionName": "N " + id, "type": "PIX",
			"transactionAmount": map[string]string{"amount": value}}
	}
	l := withReport(report(204, txn("a", "2026-03-01T10:00:00", "debito", "-1.005"), txn("b", "2026-02-27", "CREDITO", "2")))
	ctx := context.Background()

	accs, err := p.Accounts(ctx, l)
	require.NoError(t, err, "204 (some bank APIs down) is a usable report")
	require.Len(t, accs, 1)
	require.Equal(t, "002-0420-12-X", accs[0].ID)
	require.Equal(t, "12", accs[0].Mask, "a short number is its own mask")
	require.Equal(t, "Banco Dois conta conjunta", accs[0].Name)
	require.Equal(t, "BRL", accs[0].Currency, "an amount without currency is in reais")
	require.Equal(t, int64(1000), accs[0].Balance.Current, "missing blocked and invested amounts count as zero")
	require.Equal(t, time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), accs[0].Balance.AsOf, "the balance is as of the report's time")

	txs, err := p.Transactions(ctx, l, accs[0].ID)
	require.NoError(t, err)
	require.Len(t, txs.Items, 2)
	require.Equal(t, int64(-101), txs.Items[0].AmountMinor, "the sign follows creditDebitType, whatever the amount's sign or case")
	require.Equal(t, "2026-03-01", txs.Items[0].BookingDate, "a date with a time keeps its date")
	require.Equal(t, "N a", txs.Items[0].Description)
	require.Equal(t, "PIX", txs.Items[0].Category)
	require.Equal(t, int64(200), txs.Items[1].AmountMinor)
	require.Equal(t, "2026-02-27", txs.From)
	require.Equal(t, "2026-03-01", txs.To)

	_, err = p.Transactions(ctx, l, "002-0420-99-X")
	requireReason(t, err, "ACCOUNT_NOT_FOUND", false)
}

func TestUnreadableLinksAndReportsFailWithTheirReason(t *testing.T) {
	bad := string(upstream.BadResponse)
	okTxn := map[string]any{"transactionId": "a", "transactionDate": "2026-03-01", "creditDebitType": "CREDITO", "transactionAmount": map[string]string{"amount": "1"}}
	for _, tc := range []struct {
		name   string
		link   extraction.Link
		read   string // "accounts" or "transactions"
		reason string
	}{
		{"a link without state", extraction.Link{Succeeded: true}, "accounts", extraction.ReasonLoginRequired},
		{"a state naming no consent", extraction.Link{Succeeded: true, State: []byte(`{"taxId":"` + cpf + `"}`)}, "accounts", extraction.ReasonLoginRequired},
		{"a state that is not JSON", extraction.Link{Succeeded: true, State: []byte("kc_1")}, "accounts", extraction.ReasonLoginRequired},
		{"a report that is not JSON", withReport([]byte("<html>")), "accounts", bad},
		{"a failed report", withReport(report(5001)), "accounts", "INSTITUTION_UNAVAILABLE"},
		{"a balance that is not a decimal", withReport([]byte(`{"code":200,"checkingAccounts":[{"balances":{"availableAmount":{"amount":"1,00"}}}]}`)), "accounts", bad},
		{"a transaction amount that is not a decimal", withReport(report(200, map[string]any{"transactionId": "a", "transactionDate": "2026-03-01", "transactionAmount": map[string]string{"amount": "x"}})), "transactions", bad},
		{"a transaction without id", withReport(report(200, okTxn, map[string]any{"transactionDate": "2026-03-01", "transactionAmount": map[string]string{"amount": "1"}})), "transactions", bad},
		{"a transaction without a date", withReport(report(200, map[string]any{"transactionId": "b", "transactionDate": "yesterday", "transactionAmount": map[string]string{"amount": "1"}})), "transactions", bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := klavi.New(nil)
			var err error
			if tc.read == "accounts" {
				_, err = p.Accounts(context.Background(), tc.link)
			} else {
				_, err = p.Transactions(context.Background(), tc.link, "002-0420-12-X")
			}
			requireReason(t, err, tc.reason, false)
		})
	}
}

func TestDocumentsKeepsOnlyWhatPuenteAskedFor(t *testing.T) {
	p := klavi.New(nil)
	ctx := context.Background()

	docs, err := p.Documents(ctx, "", report(200))
	require.NoError(t, err)
	require.Equal(t, []extraction.PushedDocument{{ClientID: clientID, ConsentID: "csn_doc", Kind: "pf_checking_account", Body: report(200)}}, docs,
		"a report is kept whole, under its consent and product")

	docs, err = p.Documents(ctx, "", []byte(` {"code":200,"productName":"pf_checking_account"}`))
	require.NoError(t, err)
	require.Empty(t, docs, "a report without Puente's externalInfo is someone else's")

	docs, err = p.Documents(ctx, "", []byte(`[{"eventName":"consent_authorised","payload":{"linkId":"l"},"externalInfo":{"client_id":"c","consent_id":"s"}},
		{"eventName":"product_generated_success","payload":{"productName":"pf_checking_account"},"externalInfo":{"client_id":"c","consent_id":"s"}}]`))
	require.NoError(t, err)
	require.Empty(t, docs, "events other than a failed report carry no data")

	docs, err = p.Documents(ctx, "", []byte(`[{"eventName":"product_generated_failed","payload":{"productName":"pf_checking_account","code":"5001","message":"down"},
		"externalInfo":{"client_id":"c","consent_id":"s"}}]`))
	require.NoError(t, err)
	require.Len(t, docs, 1)
	require.Equal(t, "c", docs[0].ClientID)
	require.Equal(t, "s", docs[0].ConsentID)
	var r wire.Report
	require.NoError(t, json.Unmarshal(docs[0].Body, &r))
	require.Equal(t, 5001, r.Code, "a failure's code may come as a string")

	docs, err = p.Documents(ctx, "", []byte(`[{"eventName":"product_generated_failed","payload":{"productName":"pf_checking_account","code":200}, "externalInfo":{"client_id":"c","consent_id":"s"}}]`))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(docs[0].Body, &r))
	require.False(t, wire.ReportUsable(r.Code), "a failure event is never a usable report, whatever code it says")

	for _, body := range []string{"", "not json", `{"code":`, `[{"eventName":1}]`} {
		_, err := p.Documents(ctx, "", []byte(body))
		require.Error(t, err, "%q", body)
	}
}
