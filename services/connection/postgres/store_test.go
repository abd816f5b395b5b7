package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/services/connection"
	connectionpg "puente.dev/services/connection/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's store over its own freshly migrated database.
type bundle struct {
	ctx   context.Context
	url   string // superuser URL of the test's database
	store *connectionpg.Store
	admin *pgx.Conn // a superuser connection, to look behind the store
	now   time.Time // a base time, at the database's (microsecond) precision
}

func setup(t testing.TB) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, connectionpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, dbURL, connectionpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	admin, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	return bundle{ctx: ctx, url: dbURL, store: connectionpg.New(pool), admin: admin, now: time.Now().UTC().Truncate(time.Microsecond)}
}

// count runs a count(*) query as the superuser.
func (b bundle) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.admin.QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

func (b bundle) outboxCount(t testing.TB, typ, flowID string) int {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM connection.outbox WHERE type = $1 AND flow_id = $2`, typ, flowID)
}

func (b bundle) stepCount(t testing.TB, id string) int {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM connection.connection_steps WHERE connection_id = $1`, id)
}

func institution(ext, name, org, country string, personal, business bool, products ...string) connection.Institution {
	return connection.Institution{
		ExternalID: ext, OrganizationID: "org-" + ext, OrganizationName: org, Name: name, Country: country,
		Personal: personal, Business: business, Products: products, Auth: connection.Credentials,
		Fields:  []connection.CredentialField{{Name: "username", Type: connection.Text, Label: "User", Required: true}},
		Sources: []string{"web"}, LogoURL: "https://logo.example/" + ext, Health: connection.Operational,
	}
}

// syncOne syncs one institution and returns it as stored (with our id).
func syncOne(t testing.TB, b bundle) connection.Institution {
	t.Helper()
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "sandbox", []connection.Institution{institution("bank", "Bank", "Bank Org", "MX", true, false, "ACCOUNTS")}))
	got, err := b.store.ListInstitutions(b.ctx, connection.InstitutionFilter{}, connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

// newConnection creates a PENDING connection at b.now+offset for clientID/userID.
func newConnection(t testing.TB, b bundle, insID, clientID, userID string, offset time.Duration, sec connection.Secrets) connection.Connection {
	t.Helper()
	at := b.now.Add(offset)
	c := connection.Connection{
		ID: ids.New("con"), ClientID: clientID, UserID: userID, InstitutionID: insID, Provider: "sandbox",
		Status: connection.Pending, UsernameHint: "ab••cd", CreatedAt: at, UpdatedAt: at,
	}
	step := connection.Step{Status: connection.Pending, Message: "created", At: at}
	require.NoError(t, b.store.CreateConnection(b.ctx, c, sec, step, connection.Job{Kind: "connection.login"}))
	return c
}

func connIDs(cs []connection.Connection) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestSyncInstitutionsKeepsIDs(t *testing.T) {
	b := setup(t)
	a := institution("a", "Alpha", "Alpha Org", "MX", true, false, "ACCOUNTS")
	z := institution("z", "Zeta", "Zeta Org", "CO", false, true, "BALANCES")
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "sandbox", []connection.Institution{a, z}))
	// The same external id under another provider is another institution.
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "other", []connection.Institution{a}))

	first, err := b.store.ListInstitutions(b.ctx, connection.InstitutionFilter{}, connection.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, first, 3)
	byKey := map[string]connection.Institution{}
	for _, in := range first {
		byKey[in.Provider+"/"+in.ExternalID] = in
	}
	got := byKey["sandbox/a"]
	require.NotEmpty(t, got.ID)
	require.Equal(t, "Alpha", got.Name)
	require.Equal(t, "Alpha Org", got.OrganizationName)
	require.Equal(t, []string{"ACCOUNTS"}, got.Products)
	require.Equal(t, a.Fields, got.Fields)
	require.Equal(t, connection.Credentials, got.Auth)
	require.Equal(t, connection.Operational, got.Health)

	a.Name = "Alpha Renamed"
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "sandbox", []connection.Institution{a, z}))
	second, err := b.store.ListInstitutions(b.ctx, connection.InstitutionFilter{}, connection.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, second, 3, "a second sync adds no rows")
	for _, in := range second {
		require.Equal(t, byKey[in.Provider+"/"+in.ExternalID].ID, in.ID, "ids stay put across syncs")
	}
	renamed, err := b.store.GetInstitution(b.ctx, got.ID)
	require.NoError(t, err)
	require.Equal(t, "Alpha Renamed", renamed.Name)
	other, err := b.store.GetInstitution(b.ctx, byKey["other/a"].ID)
	require.NoError(t, err)
	require.Equal(t, "Alpha", other.Name, "another provider's institution is untouched")

	_, err = b.store.GetInstitution(b.ctx, "ins_unknown")
	require.ErrorIs(t, err, connection.ErrInstitutionNotFound)
}

func TestListInstitutionsFilters(t *testing.T) {
	b := setup(t)
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "sandbox", []connection.Institution{
		institution("bbva", "BBVA México", "Grupo BBVA", "MX", true, true, "ACCOUNTS", "BALANCES"),
		institution("bano", "Banorte", "Grupo Financiero Banorte", "MX", true, false, "ACCOUNTS"),
		institution("pct", "100% Bank", "Percent", "CO", false, true, "TRANSACTIONS"),
		institution("und", "Under_Score", "Under Org", "CO", true, false, "BALANCES"),
		institution("bank", "BankX", "Plain", "CO", true, false, "OWNERSHIP"),
	}))
	names := func(f connection.InstitutionFilter) []string {
		t.Helper()
		got, err := b.store.ListInstitutions(b.ctx, f, connection.Page{Limit: 100})
		require.NoError(t, err)
		out := []string{}
		for _, in := range got {
			out = append(out, in.Name)
		}
		return out
	}
	for name, tc := range map[string]struct {
		f    connection.InstitutionFilter
		want []string
	}{
		"none":                 {connection.InstitutionFilter{}, []string{"BBVA México", "Banorte", "100% Bank", "Under_Score", "BankX"}},
		"country":              {connection.InstitutionFilter{Country: "MX"}, []string{"BBVA México", "Banorte"}},
		"product":              {connection.InstitutionFilter{Product: "BALANCES"}, []string{"BBVA México", "Under_Score"}},
		"query case":           {connection.InstitutionFilter{Query: "BANORTE"}, []string{"Banorte"}},
		"query organization":   {connection.InstitutionFilter{Query: "grupo"}, []string{"BBVA México", "Banorte"}},
		"query literal %":      {connection.InstitutionFilter{Query: "100%"}, []string{"100% Bank"}},
		"query % alone":        {connection.InstitutionFilter{Query: "%"}, []string{"100% Bank"}},
		"query literal _":      {connection.InstitutionFilter{Query: "r_s"}, []string{"Under_Score"}},
		"query _ not wildcard": {connection.InstitutionFilter{Query: "Ban_"}, nil},
		"personal":             {connection.InstitutionFilter{Personal: true}, []string{"BBVA México", "Banorte", "Under_Score", "BankX"}},
		"business":             {connection.InstitutionFilter{Business: true}, []string{"BBVA México", "100% Bank"}},
		"personal and country": {connection.InstitutionFilter{Personal: true, Country: "CO"}, []string{"Under_Score", "BankX"}},
		"products overlap":     {connection.InstitutionFilter{Products: []string{"TRANSACTIONS", "OWNERSHIP"}}, []string{"100% Bank", "BankX"}},
		"products none match":  {connection.InstitutionFilter{Products: []string{"IDENTITY"}}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = []string{}
			}
			require.ElementsMatch(t, want, names(tc.f))
		})
	}
}

func TestListInstitutionsPagination(t *testing.T) {
	b := setup(t)
	var ins []connection.Institution
	for i := range 7 {
		ins = append(ins, institution(string(rune('a'+i)), "Bank "+string(rune('A'+i)), "Org", "MX", true, false, "ACCOUNTS"))
	}
	require.NoError(t, b.store.SyncInstitutions(b.ctx, "sandbox", ins))

	seen := map[string]bool{}
	var order []string
	page := connection.Page{Limit: 3}
	for range 10 {
		got, err := b.store.ListInstitutions(b.ctx, connection.InstitutionFilter{}, page)
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), 3)
		if len(got) == 0 {
			break
		}
		for _, in := range got {
			require.False(t, seen[in.ID], "institution %s listed twice", in.ID)
			seen[in.ID] = true
			order = append(order, in.ID)
		}
		page.After = got[len(got)-1].ID
	}
	require.Len(t, seen, 7, "the pages cover every institution")
	require.IsIncreasing(t, order, "pages are in id order")
}

func TestCreateAndGetConnection(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{Credentials: []byte("sealed")})

	got, steps, err := b.store.GetConnection(b.ctx, "cli_a", c.ID)
	require.NoError(t, err)
	require.Equal(t, c.ID, got.ID)
	require.Equal(t, "cli_a", got.ClientID)
	require.Equal(t, "usr_1", got.UserID)
	require.Equal(t, ins.ID, got.InstitutionID)
	require.Equal(t, connection.Pending, got.Status)
	require.Equal(t, "ab••cd", got.UsernameHint)
	require.Nil(t, got.Challenge)
	require.True(t, c.CreatedAt.Equal(got.CreatedAt), "created_at %v, want %v", got.CreatedAt, c.CreatedAt)
	require.Len(t, steps, 1)
	require.Equal(t, connection.Pending, steps[0].Status)
	require.Equal(t, "created", steps[0].Message)
	require.True(t, c.CreatedAt.Equal(steps[0].At))

	// Creating records its event and its first job.
	require.Equal(t, 1, b.outboxCount(t, "connection.status_changed", c.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM connection.jobs WHERE kind = 'connection.login' AND args->>'connection_id' = $1`, c.ID))

	_, _, err = b.store.GetConnection(b.ctx, "cli_b", c.ID)
	require.ErrorIs(t, err, connection.ErrConnectionNotFound)
	_, _, err = b.store.GetConnection(b.ctx, "cli_a", "con_unknown")
	require.ErrorIs(t, err, connection.ErrConnectionNotFound)
}

func TestListConnections(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c1 := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})
	c2 := newConnection(t, b, ins.ID, "cli_a", "usr_2", time.Second, connection.Secrets{})
	c3 := newConnection(t, b, ins.ID, "cli_a", "usr_1", 2*time.Second, connection.Secrets{})
	other := newConnection(t, b, ins.ID, "cli_b", "usr_1", 3*time.Second, connection.Secrets{})

	all, err := b.store.ListConnections(b.ctx, "cli_a", "", connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{c3.ID, c2.ID, c1.ID}, connIDs(all), "newest first, only the client's own")

	mine, err := b.store.ListConnections(b.ctx, "cli_a", "usr_1", connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{c3.ID, c1.ID}, connIDs(mine))

	page, err := b.store.ListConnections(b.ctx, "cli_a", "", connection.Page{After: c3.ID, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{c2.ID}, connIDs(page))

	theirs, err := b.store.ListConnections(b.ctx, "cli_b", "", connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{other.ID}, connIDs(theirs))

	none, err := b.store.ListConnections(b.ctx, "cli_c", "usr_1", connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestUpdate(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{Credentials: []byte("creds")})
	require.Equal(t, 1, b.outboxCount(t, "connection.status_changed", c.ID))

	// A change with no step: the row changes, nothing else.
	at1 := b.now.Add(time.Second)
	_, err := b.store.Update(b.ctx, "cli_a", c.ID, func(c *connection.Connection, s *connection.Secrets) (connection.Change, error) {
		require.Equal(t, []byte("creds"), s.Credentials, "fn sees the stored secrets")
		s.ProviderState = []byte("state")
		c.UpdatedAt = at1
		return connection.Change{}, nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, b.stepCount(t, c.ID))
	require.Equal(t, 1, b.outboxCount(t, "connection.status_changed", c.ID))

	// A change with a step and a job.
	at2 := b.now.Add(2 * time.Second)
	challenge := &connection.Challenge{ID: "chl_1", Round: 1, Fields: []connection.ChallengeField{{Name: "otp", Type: connection.ChallengeText, Label: "Code"}}, ExpiresAt: at2.Add(time.Minute)}
	out, err := b.store.Update(b.ctx, "cli_a", c.ID, func(c *connection.Connection, s *connection.Secrets) (connection.Change, error) {
		require.Equal(t, []byte("state"), s.ProviderState, "the previous update's secrets persisted")
		c.Status, c.Challenge, c.UpdatedAt = connection.WaitingMFA, challenge, at2
		s.Round = 1
		return connection.Change{
			Step: &connection.Step{Status: connection.WaitingMFA, Message: "waiting", At: at2},
			Jobs: []connection.Job{{Kind: "connection.mfa_timeout", ChallengeID: "chl_1", RunAt: at2.Add(time.Minute), Args: map[string]string{"round": "1"}}},
		}, nil
	})
	require.NoError(t, err)
	require.Equal(t, connection.WaitingMFA, out.Status)

	got, steps, err := b.store.GetConnection(b.ctx, "cli_a", c.ID)
	require.NoError(t, err)
	require.Equal(t, connection.WaitingMFA, got.Status)
	require.NotNil(t, got.Challenge)
	require.Equal(t, "chl_1", got.Challenge.ID)
	require.Equal(t, challenge.Fields, got.Challenge.Fields)
	require.True(t, at2.Equal(got.UpdatedAt))
	require.Len(t, steps, 2)
	require.Equal(t, []connection.Status{connection.Pending, connection.WaitingMFA}, []connection.Status{steps[0].Status, steps[1].Status})
	require.Equal(t, 2, b.outboxCount(t, "connection.status_changed", c.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM connection.jobs
		WHERE kind = 'connection.mfa_timeout' AND args->>'connection_id' = $1 AND args->>'challenge_id' = 'chl_1' AND args->>'round' = '1'`, c.ID))

	// A third step is appended after the others.
	at3 := b.now.Add(3 * time.Second)
	_, err = b.store.Update(b.ctx, "", c.ID, func(c *connection.Connection, s *connection.Secrets) (connection.Change, error) {
		require.Equal(t, 1, s.Round)
		c.Status, c.Reason, c.Challenge, c.UpdatedAt = connection.Failed, connection.MFATimeout, nil, at3
		return connection.Change{Step: &connection.Step{Status: connection.Failed, Reason: connection.MFATimeout, At: at3}}, nil
	})
	require.NoError(t, err, "the service's own work (client id \"\") sees every connection")
	got, steps, err = b.store.GetConnection(b.ctx, "cli_a", c.ID)
	require.NoError(t, err)
	require.Equal(t, connection.Failed, got.Status)
	require.Nil(t, got.Challenge)
	require.Len(t, steps, 3)
	require.Equal(t, []connection.Status{connection.Pending, connection.WaitingMFA, connection.Failed},
		[]connection.Status{steps[0].Status, steps[1].Status, steps[2].Status})
	require.Equal(t, connection.MFATimeout, steps[2].Reason)
	require.Equal(t, 3, b.outboxCount(t, "connection.status_changed", c.ID))
}

func TestUpdateRollsBackOnError(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})
	jobsBefore := b.count(t, `SELECT count(*) FROM connection.jobs`)

	boom := errors.New("boom")
	_, err := b.store.Update(b.ctx, "cli_a", c.ID, func(c *connection.Connection, s *connection.Secrets) (connection.Change, error) {
		c.Status = connection.Succeeded
		s.Credentials = []byte("changed")
		return connection.Change{
			Step: &connection.Step{Status: connection.Succeeded, At: b.now},
			Jobs: []connection.Job{{Kind: "connection.sync"}},
		}, boom
	})
	require.ErrorIs(t, err, boom)

	got, steps, err := b.store.GetConnection(b.ctx, "cli_a", c.ID)
	require.NoError(t, err)
	require.Equal(t, connection.Pending, got.Status)
	require.Len(t, steps, 1)
	require.Equal(t, 1, b.outboxCount(t, "connection.status_changed", c.ID))
	require.Equal(t, jobsBefore, b.count(t, `SELECT count(*) FROM connection.jobs`))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM connection.connections WHERE credentials IS NOT NULL`))

	called := false
	_, err = b.store.Update(b.ctx, "cli_b", c.ID, func(*connection.Connection, *connection.Secrets) (connection.Change, error) {
		called = true
		return connection.Change{}, nil
	})
	require.ErrorIs(t, err, connection.ErrConnectionNotFound)
	require.False(t, called, "fn never sees another client's connection")
	_, err = b.store.Update(b.ctx, "", "con_unknown", func(*connection.Connection, *connection.Secrets) (connection.Change, error) {
		return connection.Change{}, nil
	})
	require.ErrorIs(t, err, connection.ErrConnectionNotFound)
}

func TestConnectionByRedirectState(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	hash := []byte("state-hash-1")
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{RedirectState: hash})
	newConnection(t, b, ins.ID, "cli_b", "usr_1", 0, connection.Secrets{RedirectState: []byte("state-hash-2")})

	clientID, id, err := b.store.ConnectionByRedirectState(b.ctx, hash)
	require.NoError(t, err)
	require.Equal(t, "cli_a", clientID)
	require.Equal(t, c.ID, id)

	_, _, err = b.store.ConnectionByRedirectState(b.ctx, []byte("unknown"))
	require.ErrorIs(t, err, connection.ErrRedirectState)

	// Once cleared, the state is used up.
	_, err = b.store.Update(b.ctx, "cli_a", c.ID, func(_ *connection.Connection, s *connection.Secrets) (connection.Change, error) {
		s.RedirectState = nil
		return connection.Change{}, nil
	})
	require.NoError(t, err)
	_, _, err = b.store.ConnectionByRedirectState(b.ctx, hash)
	require.ErrorIs(t, err, connection.ErrRedirectState)
}

func TestDeleteConnection(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})
	keep := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})
	_, err := b.store.Update(b.ctx, "cli_a", c.ID, func(c *connection.Connection, _ *connection.Secrets) (connection.Change, error) {
		c.Status = connection.Running
		return connection.Change{Step: &connection.Step{Status: connection.Running, At: b.now}}, nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, b.stepCount(t, c.ID))

	require.ErrorIs(t, b.store.DeleteConnection(b.ctx, "cli_b", c.ID), connection.ErrConnectionNotFound)
	require.Equal(t, 0, b.outboxCount(t, "connection.deleted", c.ID))

	require.NoError(t, b.store.DeleteConnection(b.ctx, "cli_a", c.ID))
	_, _, err = b.store.GetConnection(b.ctx, "cli_a", c.ID)
	require.ErrorIs(t, err, connection.ErrConnectionNotFound)
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM connection.connections WHERE id = $1`, c.ID))
	require.Equal(t, 0, b.stepCount(t, c.ID))
	require.Equal(t, 1, b.outboxCount(t, "connection.deleted", c.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM connection.outbox WHERE type = 'connection.deleted' AND client_id = 'cli_a'`))

	// The other connection is untouched; a second delete finds nothing.
	require.Equal(t, 1, b.stepCount(t, keep.ID))
	require.ErrorIs(t, b.store.DeleteConnection(b.ctx, "cli_a", c.ID), connection.ErrConnectionNotFound)
	require.Equal(t, 1, b.outboxCount(t, "connection.deleted", c.ID))
}

func TestStalledConnections(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	cutoff := b.now
	oldPending := newConnection(t, b, ins.ID, "cli_a", "usr_1", -time.Hour, connection.Secrets{})
	oldRunning := newConnection(t, b, ins.ID, "cli_b", "usr_1", -time.Minute, connection.Secrets{})
	oldDone := newConnection(t, b, ins.ID, "cli_a", "usr_1", -time.Hour, connection.Secrets{})
	oldFailed := newConnection(t, b, ins.ID, "cli_a", "usr_1", -time.Hour, connection.Secrets{})
	newConnection(t, b, ins.ID, "cli_a", "usr_1", time.Minute, connection.Secrets{}) // recent
	newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})           // exactly at the cutoff
	set := func(id string, st connection.Status, at time.Time) {
		_, err := b.store.Update(b.ctx, "", id, func(c *connection.Connection, _ *connection.Secrets) (connection.Change, error) {
			c.Status, c.UpdatedAt = st, at
			return connection.Change{}, nil
		})
		require.NoError(t, err)
	}
	set(oldRunning.ID, connection.Running, cutoff.Add(-time.Minute))
	set(oldDone.ID, connection.Succeeded, cutoff.Add(-time.Hour))
	set(oldFailed.ID, connection.Failed, cutoff.Add(-time.Hour))

	got, err := b.store.StalledConnections(b.ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, []string{oldPending.ID, oldRunning.ID}, got, "oldest first, only those not final")
}

// waitListening waits until a backend of this database is LISTENing on the changes channel.
func waitListening(t *testing.T, b bundle) {
	t.Helper()
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle' AND query = 'LISTEN connection_changed'`) > 0
	}, 10*time.Second, 10*time.Millisecond, "the store never started listening")
}

func TestChanges(t *testing.T) {
	b := setup(t)
	ins := syncOne(t, b)
	c := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})
	quiet := newConnection(t, b, ins.ID, "cli_a", "usr_1", 0, connection.Secrets{})

	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.store.Listen(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })

	changes, err := b.store.Changes(ctx)
	require.NoError(t, err)
	waitListening(t, b)

	// An update without a step notifies nobody; one with a step does.
	_, err = b.store.Update(b.ctx, "cli_a", quiet.ID, func(c *connection.Connection, _ *connection.Secrets) (connection.Change, error) {
		c.UpdatedAt = b.now.Add(time.Second)
		return connection.Change{}, nil
	})
	require.NoError(t, err)
	_, err = b.store.Update(b.ctx, "cli_a", c.ID, func(c *connection.Connection, _ *connection.Secrets) (connection.Change, error) {
		c.Status = connection.Running
		return connection.Change{Step: &connection.Step{Status: connection.Running, At: b.now}}, nil
	})
	require.NoError(t, err)

	select {
	case id := <-changes:
		require.Equal(t, c.ID, id)
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered within 10s")
	}
}
