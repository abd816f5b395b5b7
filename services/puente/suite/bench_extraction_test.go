package suite_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/postgres"
	"puente.dev/services/extraction"
	extractionpg "puente.dev/services/extraction/postgres"
)

// Extraction benchmarks: /transactions:sync pages of a consent with 100,000 transactions beside
// a bare indexed range scan of the same shape; transactions ingested (reconciled and written)
// beside a bare COPY of the same rows.

const (
	bigConsentTransactions = 100_000
	syncPageSize           = 500
	ingestBatch            = 1_000
)

// bigConsent links a sandbox user and gives the consent bigConsentTransactions transactions,
// written straight to the table (a year of a busy business account), numbered 1..n.
func bigConsent(b *testing.B) (*bundle, client, linked) {
	bd := setupLogging(b, io.Discard, slog.LevelInfo)
	c := bd.newClient("bench")
	l := bd.link(c, "big", "user_good", "CL", "ACCOUNTS", "TRANSACTIONS")
	x := bd.extract(c.Token, l.consent, "ACCOUNTS")
	require.Equal(b, extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED, x.GetStatus())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer conn.Close(ctx)
	var account string
	require.NoError(b, conn.QueryRow(ctx, `SELECT id FROM extraction.accounts WHERE consent_id = $1 LIMIT 1`, l.consent).Scan(&account))
	rows := make([][]any, bigConsentTransactions)
	now := time.Now().UTC()
	day := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		v := int64(i + 1)
		rows[i] = []any{ids.New("txn"), c.ID, l.consent, account, fmt.Sprintf("up-%d", i), -int64(1000 + i%5000), "CLP", false,
			day.AddDate(0, 0, i/300), nil, "Supermercado Lider", "", "", "GROCERIES", false, v, v, now, now}
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"extraction", "transactions"}, []string{"id", "client_id", "consent_id", "account_id",
		"upstream_id", "amount_minor", "currency", "pending", "booking_date", "value_date", "description", "counterparty_name",
		"counterparty_type", "category", "removed", "created_version", "version", "created_at", "updated_at"}, pgx.CopyFromRows(rows))
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `UPDATE extraction.consents SET version = $2 WHERE id = $1`, l.consent, bigConsentTransactions)
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `ANALYZE extraction.transactions`)
	require.NoError(b, err)
	return bd, c, l
}

// BenchmarkBaselineRangeScan reads pages of syncPageSize rows in index order from the same table,
// with the same predicate the service uses, straight from Postgres: one op is one page.
func BenchmarkBaselineRangeScan(b *testing.B) {
	bd, _, l := bigConsent(b)
	pool, err := pgxpool.New(context.Background(), bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer pool.Close()
	b.ResetTimer()
	var after int64
	for b.Loop() {
		rows, err := pool.Query(context.Background(), `SELECT id, account_id, upstream_id, amount_minor, currency, booking_date, description, version
			FROM extraction.transactions WHERE consent_id = $1 AND version > $2 ORDER BY version LIMIT $3`, l.consent, after, syncPageSize)
		require.NoError(b, err)
		n := 0
		for rows.Next() {
			n++
			require.NoError(b, rows.Scan(new(string), new(string), new(string), new(int64), new(string), new(time.Time), new(string), &after))
		}
		require.NoError(b, rows.Err())
		if n < syncPageSize {
			after = 0
		}
	}
}

// BenchmarkTransactionsSyncPages pages through the consent's transactions with
// SyncTransactions over gRPC, consent check included: one op is one page.
func BenchmarkTransactionsSyncPages(b *testing.B) {
	bd, c, l := bigConsent(b)
	x := extractionv1.NewExtractionServiceClient(bd.conn)
	ctx := bearerCtx(c.Token)
	cursor := ""
	b.ResetTimer()
	for b.Loop() {
		r, err := x.SyncTransactions(ctx, &extractionv1.SyncTransactionsRequest{ConsentId: l.consent, Cursor: cursor, Count: syncPageSize})
		require.NoError(b, err)
		cursor = r.GetNextCursor()
		if !r.GetHasMore() {
			cursor = ""
		}
	}
}

// ingestRows are ingestBatch upstream transactions of one account.
func ingestRows(account int) []extraction.UpstreamTransaction {
	out := make([]extraction.UpstreamTransaction, ingestBatch)
	day := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		out[i] = extraction.UpstreamTransaction{
			ID: fmt.Sprintf("a%d-t%d", account, i), AmountMinor: -int64(1000 + i), Currency: "CLP",
			BookingDate: day.AddDate(0, 0, i%90).Format(time.DateOnly), Description: "Supermercado Lider", Category: "GROCERIES",
		}
	}
	return out
}

// BenchmarkBaselineCopyTransactions COPYs ingestBatch rows of the same shape into the same
// table: one op is one batch.
func BenchmarkBaselineCopyTransactions(b *testing.B) {
	bd, c, l := bigConsent(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, bd.cfg.DatabaseURL)
	require.NoError(b, err)
	defer conn.Close(ctx)
	var account string
	require.NoError(b, conn.QueryRow(ctx, `SELECT id FROM extraction.accounts WHERE consent_id = $1 LIMIT 1`, l.consent).Scan(&account))
	now := time.Now().UTC()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n++
		rows := make([][]any, 0, ingestBatch)
		for i, u := range ingestRows(n) {
			d, _ := time.Parse(time.DateOnly, u.BookingDate)
			rows = append(rows, []any{ids.New("txn"), c.ID, l.consent, account, u.ID, u.AmountMinor, u.Currency, false, d, nil,
				u.Description, "", "", u.Category, false, int64(i), int64(i), now, now})
		}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"extraction", "transactions"}, []string{"id", "client_id", "consent_id", "account_id",
			"upstream_id", "amount_minor", "currency", "pending", "booking_date", "value_date", "description", "counterparty_name",
			"counterparty_type", "category", "removed", "created_version", "version", "created_at", "updated_at"}, pgx.CopyFromRows(rows))
		require.NoError(b, err)
	}
}

// BenchmarkIngestTransactions reconciles and writes ingestBatch new transactions of a fresh
// account per op through the store (the lock, the read of what is stored, the diff, the
// numbering, the COPY), in the same consent as the other benchmarks.
func BenchmarkIngestTransactions(b *testing.B) {
	bd, c, l := bigConsent(b)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, bd.cfg.DatabaseURL, extractionpg.Schema)
	require.NoError(b, err)
	defer pool.Close()
	store := extractionpg.New(pool)
	cns := extraction.Consent{ID: l.consent, ClientID: c.ID, UserID: l.user}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n++
		b.StopTimer()
		accs, _, err := store.SaveAccounts(ctx, cns, []extraction.UpstreamAccount{{ID: fmt.Sprintf("bench-%d", n), Type: "DEPOSITORY", Currency: "CLP"}}, false, time.Now().UTC())
		require.NoError(b, err)
		rows := ingestRows(n)
		b.StartTimer()
		counts, err := store.SaveTransactions(ctx, accs[len(accs)-1], extraction.UpstreamTransactions{From: "2025-10-01", To: "2025-12-29", Items: rows}, time.Now().UTC(), time.Now().UTC())
		require.NoError(b, err)
		require.Equal(b, ingestBatch, counts.Added)
	}
}
