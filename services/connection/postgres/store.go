// Package postgres is the connection service's store on PostgreSQL (pgx/v5).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/outbox"
	"puente.dev/pkg/postgres"
	"puente.dev/services/connection"
)

// Schema is the service's schema (and, prefixed, its role).
const Schema = "connection"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the service's migrations, the outbox's and the job queue's.
func Migrate(ctx context.Context, url string) error {
	base, _ := fs.Sub(migrations, "migrations")
	all, err := postgres.WithMigrations(base, map[string]string{
		"002_outbox.up.sql":     outbox.Migration,
		"003_jobs.up.sql":       jobs.Migration,
		"006_jobs_trace.up.sql": jobs.TraceMigration,
		"008_jobs_stats.up.sql": jobs.StatsMigration,
	})
	if err != nil {
		return err
	}
	return postgres.Migrate(ctx, url, Schema, all)
}

// changedChannel carries the id of each connection that changed, for WatchConnection.
const changedChannel = "connection_changed"

// Store implements connection.Store.
type Store struct {
	pool *pgxpool.Pool

	mu   sync.Mutex
	subs map[chan string]struct{}
}

var _ connection.Store = (*Store)(nil)

// New returns a store over pool. Run Listen in the background for Changes to deliver.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, subs: map[chan string]struct{}{}}
}

// ---- catalog

func (s *Store) SyncInstitutions(ctx context.Context, provider string, ins []connection.Institution) error {
	now := time.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, in := range ins {
			fields, err := json.Marshal(in.Fields)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO institutions (id, provider, external_id, organization_id, organization_name, name, country,
					personal, business, products, auth, fields, sources, logo_url, health, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
				ON CONFLICT (provider, external_id) DO UPDATE SET
					organization_id = excluded.organization_id, organization_name = excluded.organization_name,
					name = excluded.name, country = excluded.country, personal = excluded.personal,
					business = excluded.business, products = excluded.products, auth = excluded.auth,
					fields = excluded.fields, sources = excluded.sources, logo_url = excluded.logo_url,
					health = excluded.health, updated_at = excluded.updated_at`,
				ids.New("ins"), provider, in.ExternalID, in.OrganizationID, in.OrganizationName, in.Name, in.Country,
				in.Personal, in.Business, nonNil(in.Products), string(in.Auth), fields, nonNil(in.Sources), in.LogoURL, string(in.Health), now)
			if err != nil {
				return fmt.Errorf("upsert institution %s/%s: %w", provider, in.ExternalID, err)
			}
		}
		return nil
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const institutionColumns = `id, provider, external_id, organization_id, organization_name, name, country, personal, business,
	products, auth, fields, sources, logo_url, health`

func scanInstitution(row pgx.Row) (in connection.Institution, err error) {
	var fields []byte
	var auth, health string
	err = row.Scan(&in.ID, &in.Provider, &in.ExternalID, &in.OrganizationID, &in.OrganizationName, &in.Name, &in.Country,
		&in.Personal, &in.Business, &in.Products, &auth, &fields, &in.Sources, &in.LogoURL, &health)
	if err != nil {
		return in, err
	}
	in.Auth, in.Health = connection.AuthMechanism(auth), connection.Health(health)
	return in, json.Unmarshal(fields, &in.Fields)
}

func (s *Store) ListInstitutions(ctx context.Context, f connection.InstitutionFilter, p connection.Page) ([]connection.Institution, error) {
	query := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Query) + "%"
	rows, err := s.pool.Query(ctx, `SELECT `+institutionColumns+` FROM institutions
		WHERE ($1 = '' OR country = $1)
		  AND ($2 = '' OR $2 = ANY (products))
		  AND ($3 = '%%' OR name ILIKE $3 OR organization_name ILIKE $3)
		  AND (NOT $4 OR personal) AND (NOT $5 OR business)
		  AND (cardinality($6::text[]) = 0 OR products && $6)
		  AND ($7 = '' OR id > $7)
		ORDER BY id LIMIT $8`,
		f.Country, f.Product, query, f.Personal, f.Business, nonNil(f.Products), p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (connection.Institution, error) { return scanInstitution(r) })
}

func (s *Store) GetInstitution(ctx context.Context, id string) (connection.Institution, error) {
	in, err := scanInstitution(s.pool.QueryRow(ctx, `SELECT `+institutionColumns+` FROM institutions WHERE id = $1`, id))
	return in, postgres.NotFound(err, connection.ErrInstitutionNotFound)
}

// ---- connections

const connectionColumns = `id, client_id, user_id, institution_id, provider, status, reason, upstream_code, challenge,
	authorization_url, username_hint, consent_id, redirect_uri, created_at, updated_at`

func scanConnection(row pgx.Row, extra ...any) (c connection.Connection, err error) {
	var status, reason string
	var challenge []byte
	dest := append([]any{&c.ID, &c.ClientID, &c.UserID, &c.InstitutionID, &c.Provider, &status, &reason, &c.UpstreamCode,
		&challenge, &c.AuthorizationURL, &c.UsernameHint, &c.ConsentID, &c.RedirectURI, &c.CreatedAt, &c.UpdatedAt}, extra...)
	if err = row.Scan(dest...); err != nil {
		return c, err
	}
	c.Status, c.Reason = connection.Status(status), connection.Reason(reason)
	if challenge != nil {
		c.Challenge = new(connection.Challenge)
		err = json.Unmarshal(challenge, c.Challenge)
	}
	return c, err
}

func challengeJSON(ch *connection.Challenge) ([]byte, error) {
	if ch == nil {
		return nil, nil
	}
	return json.Marshal(ch)
}

func (s *Store) CreateConnection(ctx context.Context, c connection.Connection, sec connection.Secrets, step connection.Step, job connection.Job) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ch, err := challengeJSON(c.Challenge)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO connections (id, client_id, user_id, institution_id, provider, status, reason, upstream_code,
				challenge, authorization_url, username_hint, consent_id, credentials, provider_state, answers, redirect_state, round,
				created_at, updated_at, redirect_uri)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			c.ID, c.ClientID, c.UserID, c.InstitutionID, c.Provider, string(c.Status), string(c.Reason), c.UpstreamCode,
			ch, c.AuthorizationURL, c.UsernameHint, c.ConsentID, sec.Credentials, sec.ProviderState, sec.Answers, sec.RedirectState, sec.Round, c.CreatedAt, c.UpdatedAt,
			c.RedirectURI)
		if err != nil {
			return fmt.Errorf("insert connection: %w", err)
		}
		return record(ctx, tx, c, connection.Change{Step: &step, Jobs: []connection.Job{job}})
	})
}

// record writes a change's step, event, jobs and notification in tx.
func record(ctx context.Context, tx pgx.Tx, c connection.Connection, ch connection.Change) error {
	if ch.Step != nil && ch.StepIfNew {
		var status, code, msg string
		err := tx.QueryRow(ctx, `SELECT status, upstream_code, message FROM connection_steps WHERE connection_id = $1 ORDER BY seq DESC LIMIT 1`, c.ID).
			Scan(&status, &code, &msg)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("last step: %w", err)
		}
		if err == nil && status == string(ch.Step.Status) && code == ch.Step.UpstreamCode && msg == ch.Step.Message {
			ch.Step = nil
		}
	}
	if ch.Step != nil {
		st := ch.Step
		if _, err := tx.Exec(ctx, `INSERT INTO connection_steps (connection_id, status, reason, upstream_code, message, at) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, string(st.Status), string(st.Reason), st.UpstreamCode, st.Message, st.At); err != nil {
			return fmt.Errorf("insert step: %w", err)
		}
		if _, err := outbox.Write(ctx, tx, "connection.status_changed", c.ClientID, c.ID, st.At, statusChanged(c, *st, false)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changedChannel, c.ID); err != nil {
			return err
		}
	}
	if ch.Refs != nil {
		if _, err := tx.Exec(ctx, `DELETE FROM connection_refs WHERE connection_id = $1 AND NOT (ref = ANY($2))`, c.ID, ch.Refs); err != nil {
			return fmt.Errorf("drop refs: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO connection_refs (provider, ref, connection_id) SELECT $1, r, $2 FROM unnest($3::text[]) AS r
			ON CONFLICT (provider, ref) DO NOTHING`, c.Provider, c.ID, ch.Refs); err != nil {
			return fmt.Errorf("write refs: %w", err)
		}
	}
	for _, j := range ch.Jobs {
		args := map[string]string{"connection_id": c.ID}
		if j.ChallengeID != "" {
			args["challenge_id"] = j.ChallengeID
		}
		for k, v := range j.Args {
			args[k] = v
		}
		attempts := j.MaxAttempts
		if attempts == 0 {
			attempts = 5
		}
		if err := jobs.Enqueue(ctx, tx, j.Kind, args, jobs.EnqueueOptions{RunAt: j.RunAt, MaxAttempts: attempts, UniqueKey: j.UniqueKey}); err != nil {
			return fmt.Errorf("enqueue %s: %w", j.Kind, err)
		}
	}
	return nil
}

func (s *Store) GetConnection(ctx context.Context, clientID, id string) (c connection.Connection, steps []connection.Step, err error) {
	// One snapshot for the row and its timeline, so they always agree.
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		c, err = scanConnection(tx.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE client_id = $1 AND id = $2`, clientID, id))
		if err != nil {
			return postgres.NotFound(err, connection.ErrConnectionNotFound)
		}
		rows, err := tx.Query(ctx, `SELECT status, reason, upstream_code, message, at FROM connection_steps WHERE connection_id = $1 ORDER BY seq`, id)
		if err != nil {
			return err
		}
		steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (st connection.Step, err error) {
			var status, reason string
			err = r.Scan(&status, &reason, &st.UpstreamCode, &st.Message, &st.At)
			st.Status, st.Reason = connection.Status(status), connection.Reason(reason)
			return st, err
		})
		return err
	})
	return c, steps, err
}

func (s *Store) ConnectionSecrets(ctx context.Context, clientID, id string) (connection.Connection, connection.Secrets, error) {
	var sec connection.Secrets
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+`, credentials, provider_state, answers, redirect_state, round
		FROM connections WHERE client_id = $1 AND id = $2`, clientID, id),
		&sec.Credentials, &sec.ProviderState, &sec.Answers, &sec.RedirectState, &sec.Round)
	return c, sec, postgres.NotFound(err, connection.ErrConnectionNotFound)
}

func (s *Store) ListConnections(ctx context.Context, clientID, userID string, p connection.Page) ([]connection.Connection, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+connectionColumns+` FROM connections
		WHERE client_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4`,
		clientID, userID, p.After, p.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (connection.Connection, error) { return scanConnection(r) })
}

func (s *Store) Update(ctx context.Context, clientID, id string, fn func(*connection.Connection, *connection.Secrets) (connection.Change, error)) (out connection.Connection, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var sec connection.Secrets
		c, err := scanConnection(tx.QueryRow(ctx, `SELECT `+connectionColumns+`, credentials, provider_state, answers, redirect_state, round
			FROM connections WHERE ($1 = '' OR client_id = $1) AND id = $2 FOR UPDATE`, clientID, id),
			&sec.Credentials, &sec.ProviderState, &sec.Answers, &sec.RedirectState, &sec.Round)
		if err != nil {
			return postgres.NotFound(err, connection.ErrConnectionNotFound)
		}
		wasFinal := c.Status.Final()
		change, err := fn(&c, &sec)
		if err != nil {
			return err
		}
		ch, err := challengeJSON(c.Challenge)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE connections SET status = $2, reason = $3, upstream_code = $4, challenge = $5,
				authorization_url = $6, credentials = $7, provider_state = $8, answers = $9, redirect_state = $10, round = $11,
				updated_at = $12
			WHERE id = $1`,
			c.ID, string(c.Status), string(c.Reason), c.UpstreamCode, ch, c.AuthorizationURL,
			sec.Credentials, sec.ProviderState, sec.Answers, sec.RedirectState, sec.Round, c.UpdatedAt); err != nil {
			return fmt.Errorf("update connection: %w", err)
		}
		if !wasFinal && c.Status.Final() {
			if err := countOutcome(ctx, tx, c); err != nil {
				return err
			}
		}
		out = c
		return record(ctx, tx, c, change)
	})
	return out, err
}

// outcomeColumns are institution_outcomes' counters, by connection.FinishedAs.
var outcomeColumns = map[string]string{
	metrics.ConnectionSucceeded:        "succeeded",
	metrics.ConnectionUserError:        "user_errors",
	metrics.ConnectionInstitutionError: "institution_errors",
	metrics.ConnectionInternalError:    "internal_errors",
}

// countOutcome adds a connection that just finished to its institution's bucket.
func countOutcome(ctx context.Context, tx pgx.Tx, c connection.Connection) error {
	col, ok := outcomeColumns[connection.FinishedAs(c)]
	if !ok {
		return fmt.Errorf("count outcome: unknown outcome %q", connection.FinishedAs(c))
	}
	bucket := c.UpdatedAt.UTC().Truncate(connection.OutcomeBucket)
	_, err := tx.Exec(ctx, `INSERT INTO institution_outcomes (institution_id, bucket, `+col+`) VALUES ($1, $2, 1)
		ON CONFLICT (institution_id, bucket) DO UPDATE SET `+col+` = institution_outcomes.`+col+` + 1`, c.InstitutionID, bucket)
	if err != nil {
		return fmt.Errorf("count outcome: %w", err)
	}
	return nil
}

func (s *Store) RecentOutcomes(ctx context.Context, institutionIDs []string, since time.Time) (map[string]connection.Outcomes, error) {
	rows, err := s.pool.Query(ctx, `SELECT institution_id, sum(succeeded), sum(user_errors), sum(institution_errors), sum(internal_errors)
		FROM institution_outcomes WHERE institution_id = ANY($1) AND bucket >= $2 GROUP BY institution_id`,
		institutionIDs, since.UTC().Truncate(connection.OutcomeBucket))
	if err != nil {
		return nil, fmt.Errorf("recent outcomes: %w", err)
	}
	defer rows.Close()
	out := map[string]connection.Outcomes{}
	for rows.Next() {
		var id string
		var o connection.Outcomes
		if err := rows.Scan(&id, &o.Succeeded, &o.UserErrors, &o.InstitutionErrors, &o.InternalErrors); err != nil {
			return nil, fmt.Errorf("recent outcomes: %w", err)
		}
		out[id] = o
	}
	return out, rows.Err()
}

func (s *Store) PruneOutcomes(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM institution_outcomes WHERE bucket < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune outcomes: %w", err)
	}
	return tag.RowsAffected(), nil
}

func statusChanged(c connection.Connection, st connection.Step, sandbox bool) map[string]any {
	data := map[string]any{
		"connection_id": c.ID, "user_id": c.UserID, "institution_id": c.InstitutionID,
		"status": st.Status, "reason": st.Reason, "upstream_code": st.UpstreamCode,
	}
	if sandbox {
		data["sandbox"] = true
	}
	return data
}

func (s *Store) FireStatusEvent(ctx context.Context, clientID, id string, at time.Time) (eventID string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := scanConnection(tx.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE client_id = $1 AND id = $2`, clientID, id))
		if err != nil {
			return postgres.NotFound(err, connection.ErrConnectionNotFound)
		}
		e, err := outbox.Write(ctx, tx, "connection.status_changed", c.ClientID, c.ID, at,
			statusChanged(c, connection.Step{Status: c.Status, Reason: c.Reason, UpstreamCode: c.UpstreamCode}, true))
		eventID = e.ID
		return err
	})
	return eventID, err
}

func (s *Store) ConnectionByRedirectState(ctx context.Context, stateHash []byte) (clientID, id string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT client_id, id FROM connections WHERE redirect_state = $1`, stateHash).Scan(&clientID, &id)
	return clientID, id, postgres.NotFound(err, connection.ErrRedirectState)
}

func (s *Store) StalledConnections(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM connections WHERE status NOT IN ('SUCCEEDED', 'FAILED') AND updated_at < $1 ORDER BY updated_at LIMIT 1000`, before)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *Store) DeleteConnection(ctx context.Context, clientID, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := scanConnection(tx.QueryRow(ctx, `DELETE FROM connections WHERE client_id = $1 AND id = $2 RETURNING `+connectionColumns, clientID, id))
		if err != nil {
			return postgres.NotFound(err, connection.ErrConnectionNotFound)
		}
		_, err = outbox.Write(ctx, tx, "connection.deleted", c.ClientID, c.ID, time.Now().UTC(), map[string]any{"connection_id": c.ID, "user_id": c.UserID})
		return err
	})
}

// PollNow makes a Running connection's poll due now: it enqueues one (a no-op while one is
// pending, under the same unique key) and brings a pending one forward.
func (s *Store) PollNow(ctx context.Context, provider, id, pollKind, uniqueKey string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM connections WHERE id = $1 AND provider = $2 FOR UPDATE`, id, provider).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && status != string(connection.Running)) {
			return nil // deleted, or not waiting on the upstream: nothing to poll
		}
		if err != nil {
			return err
		}
		if err := jobs.Enqueue(ctx, tx, pollKind, map[string]string{"connection_id": id}, jobs.EnqueueOptions{MaxAttempts: 5, UniqueKey: uniqueKey}); err != nil {
			return err
		}
		return jobs.Advance(ctx, tx, uniqueKey)
	})
}

func (s *Store) ConnectionsByRefs(ctx context.Context, provider string, refs []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT connection_id FROM connection_refs WHERE provider = $1 AND ref = ANY($2) ORDER BY 1`, provider, refs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ---- changes

func (s *Store) Changes(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 16)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	return ch, nil
}

// Listen relays the change notifications of every process to this process's watchers, until ctx
// ends. One connection listens for all of them; a watcher that falls behind misses a wake-up,
// not a change (it re-reads the connection, and also polls).
func (s *Store) Listen(ctx context.Context, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := s.listen(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "connection changes: listen failed; watchers fall back to polling", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Store) listen(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+changedChannel); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+changedChannel)
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.broadcast(n)
	}
}

func (s *Store) broadcast(n *pgconn.Notification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- n.Payload:
		default:
		}
	}
}
