package consent_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/consent"
	consentpg "puente.dev/services/consent/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a controlled time source: it moves only when the test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// bundle is one test's service over its own database, with a controlled clock and a job worker
// on the same clock.
type bundle struct {
	ctx    context.Context
	url    string // superuser URL of the test's database
	pool   *pgxpool.Pool
	svc    *consent.Service
	grpc   *consent.GRPC
	clock  *clock
	worker *jobs.Worker
	client string // a client id
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func setup(t testing.TB) bundle {
	t.Helper()
	return setupWatched(t)
}

// setupWatched is setup with watchers told of every change of status.
func setupWatched(t testing.TB, watchers ...consent.Watcher) bundle {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, consentpg.Migrate(ctx, url))
	pool, err := postgres.Open(ctx, url, consentpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	svc, err := consent.NewService(consentpg.New(pool), watchers, consent.Config{EncryptionKeys: secretbox.NewKeySpec("t1")}, discard())
	require.NoError(t, err)
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	svc.SetClock(clk.Now)
	w := jobs.NewWorker(jobs.Options{Pool: pool, Handlers: svc.Handlers(), Now: clk.Now, Logger: discard()})
	return bundle{ctx: ctx, url: url, pool: pool, svc: svc, grpc: consent.NewGRPC(svc), clock: clk, worker: w, client: ids.New("cli")}
}

// ---- principals, built by hand as the auth interceptor would

func clientP(clientID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: clientID}
}

func widgetP(clientID, userID string, products ...string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_WIDGET, ClientID: clientID, UserID: userID, Products: products, Country: "CL"}
}

func taskP(clientID, userID, consentID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_TASK, ClientID: clientID, UserID: userID, ConsentID: consentID}
}

var serviceP = caller.Principal{Kind: apiv1.Principal_PRINCIPAL_SERVICE}

// ---- helpers

func newConsentFor(t testing.TB, b bundle, clientID, userID string, ttl time.Duration) consent.Consent {
	t.Helper()
	n := consent.NewConsent{UserID: userID, InstitutionID: ids.New("ins"), Products: []string{"ACCOUNTS", "BALANCES"}}
	if ttl != 0 {
		n.ExpiresAt = b.clock.Now().Add(ttl)
	}
	c, h, err := b.svc.CreateConsent(b.ctx, clientP(clientID), n)
	require.NoError(t, err)
	require.Equal(t, []consent.Status{consent.AwaitingAuthorisation}, statuses(h))
	return c
}

// newConsent creates a consent of the bundle's client for a new user, expiring in a day.
func newConsent(t testing.TB, b bundle) consent.Consent {
	t.Helper()
	return newConsentFor(t, b, b.client, ids.New("usr"), 24*time.Hour)
}

func authorise(b bundle, c consent.Consent, connectionID string) (consent.Consent, []consent.HistoryEntry, error) {
	return b.svc.AuthoriseConsent(b.ctx, serviceP, consent.Authorisation{
		ClientID: c.ClientID, ConsentID: c.ID, ConnectionID: connectionID, Authorised: true,
	})
}

func reject(b bundle, c consent.Consent, reason string) (consent.Consent, []consent.HistoryEntry, error) {
	return b.svc.AuthoriseConsent(b.ctx, serviceP, consent.Authorisation{
		ClientID: c.ClientID, ConsentID: c.ID, ConnectionID: ids.New("con"), Authorised: false, Reason: reason,
	})
}

func revoke(b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
	return b.svc.RevokeConsent(b.ctx, clientP(c.ClientID), c.ID)
}

// expireByJob moves the clock past c's expire_time and runs the due jobs.
func expireByJob(t testing.TB, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
	t.Helper()
	if b.clock.Now().Before(c.ExpiresAt.Add(time.Second)) {
		b.clock.Set(c.ExpiresAt.Add(time.Second))
	}
	_, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	return get(t, b, c)
}

func get(t testing.TB, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
	t.Helper()
	got, h, err := b.svc.GetConsent(b.ctx, clientP(c.ClientID), "", c.ID)
	require.NoError(t, err)
	return got, h, nil
}

// newestFirst orders ids as lists do: by id, descending. Ids sort by creation time to the
// millisecond; within one, their order is not the order of creation.
func newestFirst(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func statuses(h []consent.HistoryEntry) []consent.Status {
	out := make([]consent.Status, 0, len(h))
	for _, e := range h {
		out = append(out, e.Status)
	}
	return out
}

func consentIDs(cs []consent.Consent) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// requireInvalid asserts err is an InvalidArgument naming field.
func requireInvalid(t testing.TB, err error, field string) *apierr.Error {
	t.Helper()
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, apierr.InvalidArgument, e.Kind, "kind of %v", err)
	require.NotEmpty(t, e.Fields, "field violations of %v", err)
	require.Equal(t, field, e.Fields[0].Field)
	return e
}

func requireKind(t testing.TB, err error, kind apierr.Kind) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, kind, apierr.KindOf(err), "kind of %v", err)
}

// superuser connects to the test's database as the cluster's superuser, to look under the store.
func superuser(t testing.TB, b bundle) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(b.ctx, b.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

type event struct {
	Type string
	Data map[string]any
}

// events returns the outbox rows of a consent, oldest first.
func events(t testing.TB, b bundle, consentID string) []event {
	t.Helper()
	rows, err := superuser(t, b).Query(b.ctx, `SELECT type, data FROM consent.outbox WHERE flow_id = $1 ORDER BY created_at, id`, consentID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (e event, err error) {
		err = r.Scan(&e.Type, &e.Data)
		return e, err
	})
	require.NoError(t, err)
	return out
}

// ---- the status machine

func TestStatusMachine(t *testing.T) {
	t.Parallel()
	allowed := map[consent.Status][]consent.Status{
		consent.AwaitingAuthorisation: {consent.Authorised, consent.Rejected, consent.Expired, consent.Revoked},
		consent.Authorised:            {consent.Revoked, consent.Expired},
	}
	for _, from := range consent.Statuses {
		for _, to := range consent.Statuses {
			want := false
			for _, a := range allowed[from] {
				want = want || a == to
			}
			verb := "may not"
			if want {
				verb = "may"
			}
			t.Run(fmt.Sprintf("%s %s become %s", from, verb, to), func(t *testing.T) {
				require.Equal(t, want, from.CanBecome(to))
			})
		}
		t.Run(fmt.Sprintf("%s is final exactly when it may become nothing", from), func(t *testing.T) {
			require.Equal(t, len(allowed[from]) == 0, from.Final())
		})
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	connection := ids.New("con")

	// in brings a new consent to a status through the service.
	in := func(t *testing.T, b bundle, status consent.Status) consent.Consent {
		t.Helper()
		c := newConsent(t, b)
		var err error
		switch status {
		case consent.AwaitingAuthorisation:
		case consent.Authorised:
			c, _, err = authorise(b, c, connection)
		case consent.Rejected:
			c, _, err = reject(b, c, "INVALID_CREDENTIALS")
		case consent.Revoked:
			c, _, err = revoke(b, c)
		case consent.Expired:
			c, _, err = expireByJob(t, b, c)
		}
		require.NoError(t, err)
		require.Equal(t, status, c.Status)
		return c
	}
	type action func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error)
	var (
		authoriseIt action = func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
			return authorise(b, c, connection)
		}
		authoriseOther action = func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
			return authorise(b, c, ids.New("con"))
		}
		rejectIt action = func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
			return reject(b, c, "INVALID_CREDENTIALS")
		}
		revokeIt action = func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
			return revoke(b, c)
		}
		expireIt action = func(t *testing.T, b bundle, c consent.Consent) (consent.Consent, []consent.HistoryEntry, error) {
			return expireByJob(t, b, c)
		}
	)

	for _, tc := range []struct {
		name       string
		from       consent.Status
		do         action
		want       consent.Status
		wantReason string
		unchanged  bool // an idempotent repeat or a job with nothing to do: no new entry, no event
		refused    bool // FailedPrecondition, nothing changed
	}{
		{name: "an awaiting consent is authorised", from: consent.AwaitingAuthorisation, do: authoriseIt, want: consent.Authorised},
		{name: "an awaiting consent is rejected, with the connection's reason", from: consent.AwaitingAuthorisation, do: rejectIt, want: consent.Rejected, wantReason: "INVALID_CREDENTIALS"},
		{name: "an awaiting consent is revoked", from: consent.AwaitingAuthorisation, do: revokeIt, want: consent.Revoked, wantReason: consent.ReasonRevokedByClient},
		{name: "an awaiting consent expires", from: consent.AwaitingAuthorisation, do: expireIt, want: consent.Expired, wantReason: consent.ReasonExpireTimeReached},
		{name: "an authorised consent is revoked", from: consent.Authorised, do: revokeIt, want: consent.Revoked, wantReason: consent.ReasonRevokedByClient},
		{name: "an authorised consent expires", from: consent.Authorised, do: expireIt, want: consent.Expired, wantReason: consent.ReasonExpireTimeReached},

		{name: "authorising an authorised consent again through its connection returns it unchanged", from: consent.Authorised, do: authoriseIt, want: consent.Authorised, unchanged: true},
		{name: "rejecting a rejected consent again returns it unchanged", from: consent.Rejected, do: rejectIt, want: consent.Rejected, unchanged: true},
		{name: "revoking a revoked consent returns it unchanged", from: consent.Revoked, do: revokeIt, want: consent.Revoked, unchanged: true},
		{name: "the expiry job leaves a rejected consent as it is", from: consent.Rejected, do: expireIt, want: consent.Rejected, unchanged: true},
		{name: "the expiry job leaves a revoked consent as it is", from: consent.Revoked, do: expireIt, want: consent.Revoked, unchanged: true},

		{name: "an authorised consent cannot be rejected", from: consent.Authorised, do: rejectIt, refused: true},
		{name: "an authorised consent cannot be authorised through another connection", from: consent.Authorised, do: authoriseOther, refused: true},
		{name: "a rejected consent cannot be authorised", from: consent.Rejected, do: authoriseIt, refused: true},
		{name: "a rejected consent cannot be revoked", from: consent.Rejected, do: revokeIt, refused: true},
		{name: "a revoked consent cannot be authorised", from: consent.Revoked, do: authoriseIt, refused: true},
		{name: "a revoked consent cannot be rejected", from: consent.Revoked, do: rejectIt, refused: true},
		{name: "an expired consent cannot be authorised", from: consent.Expired, do: authoriseIt, refused: true},
		{name: "an expired consent cannot be rejected", from: consent.Expired, do: rejectIt, refused: true},
		{name: "an expired consent cannot be revoked", from: consent.Expired, do: revokeIt, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := in(t, b, tc.from)
			before, beforeHistory, _ := get(t, b, c)
			beforeEvents := events(t, b, c.ID)
			require.Len(t, beforeEvents, len(beforeHistory), "one event per status change")
			b.clock.Advance(time.Minute)

			got, h, err := tc.do(t, b, c)
			if tc.refused {
				requireKind(t, err, apierr.FailedPrecondition)
				var e *apierr.Error
				require.ErrorAs(t, err, &e)
				require.Contains(t, e.Message, string(tc.from), "the message says where the consent is")
				after, afterHistory, _ := get(t, b, c)
				require.Equal(t, before, after)
				require.Equal(t, beforeHistory, afterHistory)
				require.Equal(t, beforeEvents, events(t, b, c.ID))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got.Status)
			stored, storedHistory, _ := get(t, b, c)
			require.Equal(t, got, stored, "what the call returns is what is stored")
			require.Equal(t, h, storedHistory)
			evs := events(t, b, c.ID)
			if tc.unchanged {
				require.Equal(t, before, stored)
				require.Equal(t, beforeHistory, storedHistory, "no new history entry")
				require.Equal(t, beforeEvents, evs, "no new event")
				return
			}
			require.Equal(t, append(statuses(beforeHistory), tc.want), statuses(storedHistory))
			last := storedHistory[len(storedHistory)-1]
			require.Equal(t, tc.wantReason, last.Reason)
			require.True(t, b.clock.Now().Equal(last.At))
			require.True(t, b.clock.Now().Equal(stored.UpdatedAt))
			require.Len(t, evs, len(storedHistory), "one event per status change")
			ev := evs[len(evs)-1]
			require.Equal(t, "consent.status_changed", ev.Type)
			require.Equal(t, string(tc.want), ev.Data["status"])
			require.Equal(t, tc.wantReason, ev.Data["reason"])
			require.Equal(t, c.ID, ev.Data["consent_id"])
			require.Equal(t, stored.ConnectionID, ev.Data["connection_id"])
		})
	}
}

func TestAuthorise(t *testing.T) {
	t.Parallel()

	t.Run("authorising records the connection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b)
		con := ids.New("con")
		got, h, err := authorise(b, c, con)
		require.NoError(t, err)
		require.Equal(t, con, got.ConnectionID)
		require.Equal(t, []consent.Status{consent.AwaitingAuthorisation, consent.Authorised}, statuses(h))
		require.True(t, c.ExpiresAt.Equal(got.ExpiresAt), "authorisation keeps the expire_time")
	})

	t.Run("a rejection keeps no connection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, _, err := reject(b, newConsent(t, b), "LOCKED")
		require.NoError(t, err)
		require.Empty(t, got.ConnectionID)
	})

	t.Run("an awaiting consent past its expire_time cannot be authorised before its job runs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b)
		b.clock.Set(c.ExpiresAt)
		_, _, err := authorise(b, c, ids.New("con"))
		require.ErrorIs(t, err, consent.ErrConsentExpired)
		requireKind(t, err, apierr.FailedPrecondition)
		_, _, err = reject(b, c, "LOCKED")
		require.ErrorIs(t, err, consent.ErrConsentExpired)

		got, _, _ := expireByJob(t, b, c)
		require.Equal(t, consent.Expired, got.Status)
	})

	for _, tc := range []struct {
		name  string
		p     caller.Principal
		a     func(c consent.Consent) consent.Authorisation
		field string      // an InvalidArgument naming it
		kind  apierr.Kind // otherwise
	}{
		{
			name: "a client token cannot authorise", p: caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT},
			a: func(c consent.Consent) consent.Authorisation {
				return consent.Authorisation{ClientID: c.ClientID, ConsentID: c.ID, ConnectionID: ids.New("con"), Authorised: true}
			},
			kind: apierr.PermissionDenied,
		},
		{
			name: "client_id is required", p: serviceP,
			a: func(c consent.Consent) consent.Authorisation {
				return consent.Authorisation{ConsentID: c.ID, ConnectionID: ids.New("con"), Authorised: true}
			},
			field: "client_id",
		},
		{
			name: "connection_id is required to authorise", p: serviceP,
			a: func(c consent.Consent) consent.Authorisation {
				return consent.Authorisation{ClientID: c.ClientID, ConsentID: c.ID, Authorised: true}
			},
			field: "connection_id",
		},
		{
			name: "another client's consent is not found", p: serviceP,
			a: func(c consent.Consent) consent.Authorisation {
				return consent.Authorisation{ClientID: ids.New("cli"), ConsentID: c.ID, ConnectionID: ids.New("con"), Authorised: true}
			},
			kind: apierr.NotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			c := newConsent(t, b)
			p := tc.p
			if p.Kind == apiv1.Principal_PRINCIPAL_CLIENT {
				p.ClientID = c.ClientID
			}
			_, _, err := b.svc.AuthoriseConsent(b.ctx, p, tc.a(c))
			if tc.field != "" {
				requireInvalid(t, err, tc.field)
			} else {
				requireKind(t, err, tc.kind)
			}
			got, h, _ := get(t, b, c)
			require.Equal(t, consent.AwaitingAuthorisation, got.Status)
			require.Len(t, h, 1)
		})
	}
}

// ---- creation

func TestCreateConsent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user := ids.New("usr")
	ins := ids.New("ins")

	t.Run("a client's consent waits for authorisation and expires in 365 days by default", func(t *testing.T) {
		c, h, err := b.svc.CreateConsent(b.ctx, clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS", "TRANSACTIONS"}})
		require.NoError(t, err)
		require.True(t, ids.Valid("cns", c.ID), "id %q", c.ID)
		require.Equal(t, b.client, c.ClientID)
		require.Equal(t, user, c.UserID)
		require.Equal(t, ins, c.InstitutionID)
		require.Empty(t, c.ConnectionID)
		require.Equal(t, []string{"ACCOUNTS", "TRANSACTIONS"}, c.Products)
		require.Equal(t, consent.AwaitingAuthorisation, c.Status)
		require.True(t, b.clock.Now().Add(365*24*time.Hour).Equal(c.ExpiresAt))
		require.True(t, b.clock.Now().Equal(c.CreatedAt))
		require.Equal(t, []consent.HistoryEntry{{Status: consent.AwaitingAuthorisation, At: c.CreatedAt}}, h)

		got, gotHistory, err := b.svc.GetConsent(b.ctx, clientP(b.client), "", c.ID)
		require.NoError(t, err)
		require.Equal(t, c, got)
		require.Equal(t, h, gotHistory)

		evs := events(t, b, c.ID)
		require.Len(t, evs, 1)
		require.Equal(t, "consent.created", evs[0].Type)
		require.Equal(t, map[string]any{
			"consent_id": c.ID, "user_id": user, "institution_id": ins,
			"status": "AWAITING_AUTHORISATION", "reason": "", "connection_id": "",
		}, evs[0].Data)

		var kind, args string
		var runAt time.Time
		require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT kind, args::text, run_at FROM consent.jobs WHERE args->>'consent_id' = $1`, c.ID).Scan(&kind, &args, &runAt))
		require.Equal(t, consent.JobExpire, kind)
		require.JSONEq(t, `{"consent_id": "`+c.ID+`"}`, args)
		require.True(t, c.ExpiresAt.Equal(runAt), "the expiry job runs at the expire_time")
	})

	t.Run("a widget session's consent is for its own user when user_id is empty", func(t *testing.T) {
		c, _, err := b.svc.CreateConsent(b.ctx, widgetP(b.client, user, "ACCOUNTS", "BALANCES"), consent.NewConsent{InstitutionID: ins, Products: []string{"BALANCES"}})
		require.NoError(t, err)
		require.Equal(t, user, c.UserID)
		require.Equal(t, b.client, c.ClientID)
	})

	t.Run("a widget session may name its own user", func(t *testing.T) {
		c, _, err := b.svc.CreateConsent(b.ctx, widgetP(b.client, user, "ACCOUNTS"), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}})
		require.NoError(t, err)
		require.Equal(t, user, c.UserID)
	})

	t.Run("an expire_time 366 days ahead is accepted", func(t *testing.T) {
		at := b.clock.Now().Add(366 * 24 * time.Hour)
		c, _, err := b.svc.CreateConsent(b.ctx, clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}, ExpiresAt: at})
		require.NoError(t, err)
		require.True(t, at.Equal(c.ExpiresAt))
	})

	for _, tc := range []struct {
		name  string
		p     caller.Principal
		n     consent.NewConsent
		field string
	}{
		{"a client must name the user", clientP(b.client), consent.NewConsent{InstitutionID: ins, Products: []string{"ACCOUNTS"}}, "user_id"},
		{"a malformed user id is rejected", clientP(b.client), consent.NewConsent{UserID: "usr_nope", InstitutionID: ins, Products: []string{"ACCOUNTS"}}, "user_id"},
		{"a widget session cannot ask for another user", widgetP(b.client, user, "ACCOUNTS"), consent.NewConsent{UserID: ids.New("usr"), InstitutionID: ins, Products: []string{"ACCOUNTS"}}, "user_id"},
		{"a widget session cannot ask for a product outside its own", widgetP(b.client, user, "ACCOUNTS"), consent.NewConsent{InstitutionID: ins, Products: []string{"ACCOUNTS", "IDENTITY"}}, "products"},
		{"the institution is required", clientP(b.client), consent.NewConsent{UserID: user, Products: []string{"ACCOUNTS"}}, "institution_id"},
		{"a malformed institution id is rejected", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: "bank", Products: []string{"ACCOUNTS"}}, "institution_id"},
		{"at least one product is required", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins}, "products"},
		{"an unknown product is rejected, naming its index", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS", "LOANS"}}, "products[1]"},
		{"a product given twice is rejected, naming the repeat", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS", "BALANCES", "ACCOUNTS"}}, "products[2]"},
		{"an expire_time in the past is rejected", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}, ExpiresAt: time.Now().Add(-time.Hour)}, "expire_time"},
		{"an expire_time of now is rejected", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}, ExpiresAt: b.clock.Now()}, "expire_time"},
		{"an expire_time more than 366 days ahead is rejected", clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}, ExpiresAt: b.clock.Now().Add(366*24*time.Hour + time.Second)}, "expire_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := b.svc.CreateConsent(b.ctx, tc.p, tc.n)
			requireInvalid(t, err, tc.field)
		})
	}

	t.Run("a rejected request stores nothing", func(t *testing.T) {
		other := ids.New("cli")
		_, _, err := b.svc.CreateConsent(b.ctx, clientP(other), consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"LOANS"}})
		requireInvalid(t, err, "products[0]")
		cs, err := b.svc.ListConsents(b.ctx, clientP(other), "", consent.Filter{}, consent.Page{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, cs)
	})

	for _, p := range []caller.Principal{taskP(b.client, user, ""), serviceP} {
		t.Run(fmt.Sprintf("a %s token cannot create a consent", p.Kind), func(t *testing.T) {
			_, _, err := b.svc.CreateConsent(b.ctx, p, consent.NewConsent{UserID: user, InstitutionID: ins, Products: []string{"ACCOUNTS"}})
			requireKind(t, err, apierr.PermissionDenied)
		})
	}
}

// ---- who sees what

func TestGetConsentScoping(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user := ids.New("usr")
	c := newConsentFor(t, b, b.client, user, 24*time.Hour)
	sibling := newConsentFor(t, b, b.client, user, 24*time.Hour) // the same user's other consent
	otherClient := ids.New("cli")

	for _, tc := range []struct {
		name     string
		p        caller.Principal
		clientID string // the request's
		id       string
		want     apierr.Kind // -1: found
		field    string      // for InvalidArgument
	}{
		{"the client sees its consent", clientP(b.client), "", c.ID, -1, ""},
		{"the client may name itself", clientP(b.client), b.client, c.ID, -1, ""},
		{"another client does not see it", clientP(otherClient), "", c.ID, apierr.NotFound, ""},
		{"a client naming another client does not see it", clientP(otherClient), b.client, c.ID, apierr.NotFound, ""},
		{"a widget session of the user sees it", widgetP(b.client, user, "ACCOUNTS"), "", c.ID, -1, ""},
		{"a widget session of another user does not see it", widgetP(b.client, ids.New("usr"), "ACCOUNTS"), "", c.ID, apierr.NotFound, ""},
		{"a task token of the user sees it", taskP(b.client, user, ""), "", c.ID, -1, ""},
		{"a task token of another user does not see it", taskP(b.client, ids.New("usr"), ""), "", c.ID, apierr.NotFound, ""},
		{"a task token narrowed to this consent sees it", taskP(b.client, user, c.ID), "", c.ID, -1, ""},
		{"a task token narrowed to another consent of the user does not see it", taskP(b.client, user, sibling.ID), "", c.ID, apierr.NotFound, ""},
		{"a task token of another client does not see it", taskP(otherClient, user, ""), "", c.ID, apierr.NotFound, ""},
		{"the service token sees it under its client", serviceP, b.client, c.ID, -1, ""},
		{"the service token must name the client", serviceP, "", c.ID, apierr.InvalidArgument, "client_id"},
		{"the service token does not see it under another client", serviceP, otherClient, c.ID, apierr.NotFound, ""},
		{"an unknown id is not found", clientP(b.client), "", ids.New("cns"), apierr.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, h, err := b.svc.GetConsent(b.ctx, tc.p, tc.clientID, tc.id)
			switch {
			case tc.want == -1:
				require.NoError(t, err)
				require.Equal(t, c.ID, got.ID)
				require.Len(t, h, 1)
			case tc.field != "":
				requireInvalid(t, err, tc.field)
			default:
				requireKind(t, err, tc.want)
				require.ErrorIs(t, err, consent.ErrConsentNotFound)
			}
		})
	}
}

func TestRevokeScoping(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user := ids.New("usr")
	c := newConsentFor(t, b, b.client, user, 24*time.Hour)

	for _, tc := range []struct {
		name string
		p    caller.Principal
		kind apierr.Kind
	}{
		{"another client cannot revoke it", clientP(ids.New("cli")), apierr.NotFound},
		{"a widget session of another user cannot revoke it", widgetP(b.client, ids.New("usr"), "ACCOUNTS"), apierr.NotFound},
		{"a task token narrowed to another consent cannot revoke it", taskP(b.client, user, ids.New("cns")), apierr.NotFound},
		{"the service token cannot revoke", serviceP, apierr.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := b.svc.RevokeConsent(b.ctx, tc.p, c.ID)
			requireKind(t, err, tc.kind)
			got, h, _ := get(t, b, c)
			require.Equal(t, consent.AwaitingAuthorisation, got.Status)
			require.Len(t, h, 1)
		})
	}
}

func TestListConsents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice, bob := ids.New("usr"), ids.New("usr")
	a1 := newConsentFor(t, b, b.client, alice, 24*time.Hour)
	b1 := newConsentFor(t, b, b.client, bob, 24*time.Hour)
	a2 := newConsentFor(t, b, b.client, alice, 24*time.Hour)
	a3 := newConsentFor(t, b, b.client, alice, 24*time.Hour)
	_, _, err := authorise(b, a2, ids.New("con"))
	require.NoError(t, err)
	_, _, err = revoke(b, b1)
	require.NoError(t, err)
	foreign := newConsentFor(t, b, ids.New("cli"), alice, 24*time.Hour) // same user id, another client

	for _, tc := range []struct {
		name string
		p    caller.Principal
		f    consent.Filter
		want []string
	}{
		{"the client sees all of its consents, newest first", clientP(b.client), consent.Filter{}, newestFirst(a1.ID, b1.ID, a2.ID, a3.ID)},
		{"by user", clientP(b.client), consent.Filter{UserID: alice}, newestFirst(a1.ID, a2.ID, a3.ID)},
		{"by status", clientP(b.client), consent.Filter{Status: consent.AwaitingAuthorisation}, newestFirst(a1.ID, a3.ID)},
		{"by user and status", clientP(b.client), consent.Filter{UserID: bob, Status: consent.Revoked}, []string{b1.ID}},
		{"by a status nobody has", clientP(b.client), consent.Filter{Status: consent.Expired}, []string{}},
		{"another client's consents stay apart", clientP(foreign.ClientID), consent.Filter{}, []string{foreign.ID}},
		{"a task token sees its user's only", taskP(b.client, bob, ""), consent.Filter{}, []string{b1.ID}},
		{"a task token filtering by another user sees nothing", taskP(b.client, bob, ""), consent.Filter{UserID: alice}, []string{}},
		{"a task token narrowed to a consent sees that one", taskP(b.client, alice, a2.ID), consent.Filter{}, []string{a2.ID}},
		{"a task token narrowed to a consent sees nothing when the filter excludes it", taskP(b.client, alice, a2.ID), consent.Filter{Status: consent.Revoked}, []string{}},
		{"a task token narrowed to another user's consent sees nothing", taskP(b.client, alice, b1.ID), consent.Filter{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := b.svc.ListConsents(b.ctx, tc.p, "", tc.f, consent.Page{Limit: 50})
			require.NoError(t, err)
			require.Equal(t, tc.want, consentIDs(cs))
		})
	}

	t.Run("pages through the gRPC API end where the list does, each consent once", func(t *testing.T) {
		ctx := caller.With(b.ctx, clientP(b.client))
		var walked []string
		token := ""
		for range 5 {
			resp, err := b.grpc.ListConsents(ctx, &consentv1.ListConsentsRequest{PageSize: 3, PageToken: token})
			require.NoError(t, err)
			for _, c := range resp.GetConsents() {
				walked = append(walked, c.GetId())
				require.Empty(t, c.GetHistory(), "lists leave the history to GetConsent")
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		require.Equal(t, newestFirst(a1.ID, b1.ID, a2.ID, a3.ID), walked)
	})

	t.Run("a status filter of the gRPC API maps to the domain's", func(t *testing.T) {
		resp, err := b.grpc.ListConsents(caller.With(b.ctx, clientP(b.client)), &consentv1.ListConsentsRequest{Status: consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED})
		require.NoError(t, err)
		require.Len(t, resp.GetConsents(), 1)
		require.Equal(t, a2.ID, resp.GetConsents()[0].GetId())
		require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED, resp.GetConsents()[0].GetStatus())
	})

	for _, tc := range []struct{ name, token string }{
		{"a page token that is not base64url is rejected", "not base64!"},
		{"a page token that is not a consent id is rejected", base64.RawURLEncoding.EncodeToString([]byte("cns_01"))},
		{"a page token of another list is rejected", base64.RawURLEncoding.EncodeToString([]byte(ids.New("usr")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.grpc.ListConsents(caller.With(b.ctx, clientP(b.client)), &consentv1.ListConsentsRequest{PageToken: tc.token})
			requireInvalid(t, err, "page_token")
		})
	}
}

// ---- expiry

func TestExpiryByJob(t *testing.T) {
	t.Parallel()

	t.Run("past its expire_time the job expires the consent, with a history entry and an event", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b)
		b.clock.Advance(time.Minute)
		c, _, err := authorise(b, c, ids.New("con"))
		require.NoError(t, err)
		ran, err := b.worker.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran, "the watchers hear of the authorisation")

		b.clock.Set(c.ExpiresAt.Add(-time.Second))
		ran, err = b.worker.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Zero(t, ran, "the job is not due before the expire_time")

		b.clock.Set(c.ExpiresAt.Add(time.Minute))
		ran, err = b.worker.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 2, ran, "the expiry, then the watchers hear of it")

		got, h, _ := get(t, b, c)
		require.Equal(t, consent.Expired, got.Status)
		require.Equal(t, []consent.Status{consent.AwaitingAuthorisation, consent.Authorised, consent.Expired}, statuses(h))
		require.Equal(t, consent.ReasonExpireTimeReached, h[2].Reason)
		require.True(t, b.clock.Now().Equal(h[2].At))

		evs := events(t, b, c.ID)
		require.Len(t, evs, 3)
		require.Equal(t, "consent.status_changed", evs[2].Type)
		require.Equal(t, "EXPIRED", evs[2].Data["status"])

		var state string
		require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT state FROM consent.jobs WHERE kind = 'consent.expire' AND args->>'consent_id' = $1`, c.ID).Scan(&state))
		require.Equal(t, "done", state)
		ran, err = b.worker.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Zero(t, ran, "nothing is left to run")
	})

	t.Run("a job run before the expire_time snoozes until then", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := newConsent(t, b)
		// The queue's clock runs ahead of the service's: the job is due, the consent is not.
		queueNow := c.ExpiresAt.Add(time.Minute)
		early := jobs.NewWorker(jobs.Options{Pool: b.pool, Handlers: b.svc.Handlers(), Now: func() time.Time { return queueNow }, Logger: discard()})
		ran, err := early.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, ran)

		got, h, _ := get(t, b, c)
		require.Equal(t, consent.AwaitingAuthorisation, got.Status)
		require.Len(t, h, 1)
		require.Len(t, events(t, b, c.ID), 1)

		var state string
		var attempts int
		var runAt time.Time
		require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT state, attempts, run_at FROM consent.jobs WHERE args->>'consent_id' = $1`, c.ID).Scan(&state, &attempts, &runAt))
		require.Equal(t, "available", state)
		require.Zero(t, attempts, "a snooze is not an attempt")
		require.True(t, queueNow.Add(c.ExpiresAt.Sub(b.clock.Now())).Equal(runAt), "snoozed for the time left until the expire_time")

		b.clock.Set(c.ExpiresAt)
		late := jobs.NewWorker(jobs.Options{Pool: b.pool, Handlers: b.svc.Handlers(), Now: func() time.Time { return runAt }, Logger: discard()})
		ran, err = late.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 2, ran, "the expiry, then the watchers hear of it")
		got, _, _ = get(t, b, c)
		require.Equal(t, consent.Expired, got.Status)
	})

	t.Run("a job for a consent that is gone, or with bad args, ends without retrying", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		conn := superuser(t, b)
		_, err := conn.Exec(b.ctx, `SET search_path = consent`)
		require.NoError(t, err)
		require.NoError(t, jobs.Enqueue(b.ctx, conn, consent.JobExpire, map[string]string{"consent_id": ids.New("cns")}, jobs.EnqueueOptions{RunAt: b.clock.Now()}))
		require.NoError(t, jobs.Enqueue(b.ctx, conn, consent.JobExpire, map[string]int{"consent_id": 7}, jobs.EnqueueOptions{RunAt: b.clock.Now()}))
		ran, err := b.worker.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, 2, ran)

		rows, err := conn.Query(b.ctx, `SELECT state FROM jobs ORDER BY id`)
		require.NoError(t, err)
		states, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"done", "failed"}, states)
	})
}

// ---- events

func TestOutboxHasOneEventPerStatusChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newConsent(t, b)
	con := ids.New("con")
	for range 2 { // the repeats write nothing
		b.clock.Advance(time.Minute)
		_, _, err := authorise(b, c, con)
		require.NoError(t, err)
	}
	for range 2 {
		b.clock.Advance(time.Minute)
		_, _, err := revoke(b, c)
		require.NoError(t, err)
	}
	_, _, err := reject(b, c, "LOCKED")
	requireKind(t, err, apierr.FailedPrecondition)
	b.clock.Set(c.ExpiresAt.Add(time.Hour))
	_, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)

	evs := events(t, b, c.ID)
	types := make([]string, 0, len(evs))
	sts := make([]string, 0, len(evs))
	for _, e := range evs {
		types = append(types, e.Type)
		sts = append(sts, e.Data["status"].(string))
		require.Equal(t, c.UserID, e.Data["user_id"])
		require.Equal(t, c.InstitutionID, e.Data["institution_id"])
	}
	require.Equal(t, []string{"consent.created", "consent.status_changed", "consent.status_changed"}, types)
	require.Equal(t, []string{"AWAITING_AUTHORISATION", "AUTHORISED", "REVOKED"}, sts)
	require.Equal(t, con, evs[2].Data["connection_id"])

	var n int
	require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT count(*) FROM consent.outbox WHERE client_id = $1`, b.client).Scan(&n))
	require.Equal(t, 3, n)
}

// ---- request_id idempotency

func TestCreateConsentIdempotency(t *testing.T) {
	t.Parallel()
	request := func(userID, requestID string, products ...string) *consentv1.CreateConsentRequest {
		return &consentv1.CreateConsentRequest{UserId: userID, InstitutionId: "ins_01JD0000000000000000000000", Products: products, RequestId: requestID}
	}
	list := func(t *testing.T, b bundle) []consent.Consent {
		t.Helper()
		cs, err := b.svc.ListConsents(b.ctx, clientP(b.client), "", consent.Filter{}, consent.Page{Limit: 50})
		require.NoError(t, err)
		return cs
	}

	t.Run("a repeated request returns the first response and creates one consent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := caller.With(b.ctx, clientP(b.client))
		user := ids.New("usr")
		first, err := b.grpc.CreateConsent(ctx, request(user, "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		again, err := b.grpc.CreateConsent(ctx, request(user, "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		require.Equal(t, first.GetConsent().GetId(), again.GetConsent().GetId())
		require.True(t, first.GetConsent().GetCreateTime().AsTime().Equal(again.GetConsent().GetCreateTime().AsTime()))
		require.Len(t, list(t, b), 1)
		require.Len(t, events(t, b, first.GetConsent().GetId()), 1)
	})

	t.Run("the same request id with other parameters is rejected, naming request_id", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := caller.With(b.ctx, clientP(b.client))
		user := ids.New("usr")
		_, err := b.grpc.CreateConsent(ctx, request(user, "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		_, err = b.grpc.CreateConsent(ctx, request(user, "req-1", "ACCOUNTS", "BALANCES"))
		requireInvalid(t, err, "request_id")
		require.ErrorIs(t, err, consent.ErrRequestIDReused)
		require.Len(t, list(t, b), 1)
	})

	t.Run("without a request id every request creates a consent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := caller.With(b.ctx, clientP(b.client))
		user := ids.New("usr")
		for range 2 {
			_, err := b.grpc.CreateConsent(ctx, request(user, "", "ACCOUNTS"))
			require.NoError(t, err)
		}
		require.Len(t, list(t, b), 2)
	})

	t.Run("two widget sessions of one client sending the same request get a consent each", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		alice, bob := ids.New("usr"), ids.New("usr")
		ra, err := b.grpc.CreateConsent(caller.With(b.ctx, widgetP(b.client, alice, "ACCOUNTS")), request("", "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		rb, err := b.grpc.CreateConsent(caller.With(b.ctx, widgetP(b.client, bob, "ACCOUNTS")), request("", "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		require.Equal(t, alice, ra.GetConsent().GetUserId())
		require.Equal(t, bob, rb.GetConsent().GetUserId())
		require.Len(t, list(t, b), 2)
	})

	t.Run("a failed request keeps nothing, and its request id can be used again", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := caller.With(b.ctx, clientP(b.client))
		user := ids.New("usr")
		req := request(user, "req-1", "ACCOUNTS")
		req.ExpireTime = timestamppb.New(b.clock.Now().Add(-time.Hour))
		_, err := b.grpc.CreateConsent(ctx, req)
		requireInvalid(t, err, "expire_time")
		_, err = b.grpc.CreateConsent(ctx, request(user, "req-1", "BALANCES"))
		require.NoError(t, err)
		require.Len(t, list(t, b), 1)
	})

	t.Run("the stored response is sealed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := b.grpc.CreateConsent(caller.With(b.ctx, clientP(b.client)), request(ids.New("usr"), "req-1", "ACCOUNTS"))
		require.NoError(t, err)
		var row string
		require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT k::text FROM consent.idempotency_keys k`).Scan(&row))
		require.NotContains(t, row, resp.GetConsent().GetId())
		require.NotContains(t, strings.ToLower(row), fmt.Sprintf("%x", resp.GetConsent().GetId()))
	})

	t.Run("Idempotent rolls back what a failing call wrote", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		boom := errors.New("boom")
		user := ids.New("usr")
		_, err := b.svc.Idempotent(b.ctx, b.client+":CreateConsent", "req-1", []byte("fp"), func(s *consent.Service) ([]byte, error) {
			c, _, err := s.CreateConsent(b.ctx, clientP(b.client), consent.NewConsent{UserID: user, InstitutionID: ids.New("ins"), Products: []string{"ACCOUNTS"}})
			if err != nil {
				return nil, err
			}
			return []byte(c.ID), boom
		})
		require.ErrorIs(t, err, boom)
		require.Empty(t, list(t, b))
		var n int
		require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT (SELECT count(*) FROM consent.outbox) + (SELECT count(*) FROM consent.jobs)`).Scan(&n))
		require.Zero(t, n, "no event and no job of the rolled-back consent")
	})
}

// ---- the gRPC translation

func TestGRPCConsentProto(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newConsent(t, b)
	con := ids.New("con")
	_, _, err := authorise(b, c, con)
	require.NoError(t, err)

	resp, err := b.grpc.GetConsent(caller.With(b.ctx, serviceP), &consentv1.GetConsentRequest{Id: c.ID, ClientId: b.client})
	require.NoError(t, err)
	p := resp.GetConsent()
	require.Equal(t, c.ID, p.GetId())
	require.Equal(t, c.UserID, p.GetUserId())
	require.Equal(t, c.InstitutionID, p.GetInstitutionId())
	require.Equal(t, con, p.GetConnectionId())
	require.Equal(t, c.Products, p.GetProducts())
	require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED, p.GetStatus())
	require.True(t, c.ExpiresAt.Equal(p.GetExpireTime().AsTime()))
	require.True(t, c.CreatedAt.Equal(p.GetCreateTime().AsTime()))
	require.Len(t, p.GetHistory(), 2)
	require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION, p.GetHistory()[0].GetStatus())
	require.Equal(t, consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED, p.GetHistory()[1].GetStatus())
}

// ---- watchers

// recordingWatcher is a service watching consents: it records every call and fails while
// failing is set.
type recordingWatcher struct {
	mu      sync.Mutex
	heard   []heard
	failing error
}

type heard struct {
	Consent consent.Consent
	Change  consent.Change
}

func (w *recordingWatcher) ConsentChanged(_ context.Context, c consent.Consent, ch consent.Change) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.heard = append(w.heard, heard{c, ch})
	return w.failing
}

func (w *recordingWatcher) Heard() []heard {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.heard)
}

func (w *recordingWatcher) setFailing(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failing = err
}

func changes(hs []heard) []consent.Change {
	out := make([]consent.Change, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Change)
	}
	return out
}

// requireChange asserts ch is c's move to status at at.
func requireChange(t *testing.T, c consent.Consent, status consent.Status, at time.Time, ch consent.Change) {
	t.Helper()
	require.Equal(t, c.ClientID, ch.ClientID)
	require.Equal(t, c.ID, ch.ConsentID)
	require.Equal(t, status, ch.Status)
	require.True(t, at.Equal(ch.At), "change at %s, want %s", ch.At, at)
}

func TestWatchersHearOfEveryChangeThroughTheNotifyJob(t *testing.T) {
	t.Parallel()
	one, two := &recordingWatcher{}, &recordingWatcher{}
	b := setupWatched(t, one, two)
	c := newConsent(t, b)
	// The queue's jobs are enqueued at the database's "now": move the clock past it.
	b.clock.Advance(time.Minute)
	ran, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, ran, "creating a consent tells nobody: it is not a change of status")
	require.Empty(t, one.Heard())

	con := ids.New("con")
	authorised, _, err := authorise(b, c, con)
	require.NoError(t, err)
	authorisedAt := b.clock.Now()
	require.Empty(t, one.Heard(), "watchers hear from the job, not from the request")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM consent.jobs WHERE kind = $1 AND state = 'available'`, consent.JobNotify))

	b.clock.Advance(time.Minute)
	ran, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	for _, w := range []*recordingWatcher{one, two} {
		hs := w.Heard()
		require.Len(t, hs, 1)
		requireChange(t, c, consent.Authorised, authorisedAt, hs[0].Change)
		require.Equal(t, authorised, hs[0].Consent, "the watcher gets the consent as stored")
		require.Equal(t, con, hs[0].Consent.ConnectionID)
	}

	_, _, err = revoke(b, c)
	require.NoError(t, err)
	revokedAt := b.clock.Now()
	b.clock.Advance(time.Minute)
	ran, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	for _, w := range []*recordingWatcher{one, two} {
		hs := w.Heard()
		require.Len(t, hs, 2)
		requireChange(t, c, consent.Revoked, revokedAt, hs[1].Change)
		require.Equal(t, consent.Revoked, hs[1].Consent.Status)
		require.Equal(t, c.UserID, hs[1].Consent.UserID)
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM consent.jobs WHERE kind = $1 AND state <> 'done'`, consent.JobNotify))

	// A revoke repeated changes nothing, and tells nobody.
	_, _, err = revoke(b, c)
	require.NoError(t, err)
	b.clock.Advance(time.Minute)
	ran, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, ran)
	require.Len(t, one.Heard(), 2)
}

func TestWatchersHearOfExpiryAndRejection(t *testing.T) {
	t.Parallel()
	w := &recordingWatcher{}
	b := setupWatched(t, w)
	expiring := newConsent(t, b)
	rejected := newConsent(t, b)
	b.clock.Advance(time.Minute)
	_, _, err := reject(b, rejected, "INVALID_CREDENTIALS")
	require.NoError(t, err)
	rejectedAt := b.clock.Now()
	_, _, err = expireByJob(t, b, expiring) // runs the rejection's notice, the expiry and its notice
	require.NoError(t, err)

	byConsent := map[string][]consent.Change{}
	for _, ch := range changes(w.Heard()) {
		byConsent[ch.ConsentID] = append(byConsent[ch.ConsentID], ch)
	}
	require.Len(t, byConsent[rejected.ID], 1)
	requireChange(t, rejected, consent.Rejected, rejectedAt, byConsent[rejected.ID][0])
	require.Len(t, byConsent[expiring.ID], 1)
	requireChange(t, expiring, consent.Expired, b.clock.Now(), byConsent[expiring.ID][0])
}

func TestAFailingWatcherMakesTheNotifyJobRetry(t *testing.T) {
	t.Parallel()
	failing, fine := &recordingWatcher{failing: errors.New("extraction is down")}, &recordingWatcher{}
	b := setupWatched(t, failing, fine)
	c := newConsent(t, b)
	b.clock.Advance(time.Minute)
	_, _, err := authorise(b, c, ids.New("con"))
	require.NoError(t, err)
	at := b.clock.Now()

	ran, err := b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	require.Len(t, failing.Heard(), 1)
	require.Len(t, fine.Heard(), 1, "the other watcher is still called")
	requireChange(t, c, consent.Authorised, at, fine.Heard()[0].Change)

	var state string
	var attempts int
	var lastError *string
	require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT state, attempts, last_error FROM consent.jobs WHERE kind = $1`, consent.JobNotify).
		Scan(&state, &attempts, &lastError))
	require.Equal(t, "available", state, "the job will run again")
	require.Equal(t, 1, attempts)
	require.NotNil(t, lastError)
	require.Contains(t, *lastError, "extraction is down")

	ran, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Zero(t, ran, "the retry waits for its backoff")

	// Past the backoff it runs again; both watchers hear it again (a call may repeat).
	failing.setFailing(nil)
	b.clock.Advance(time.Hour)
	ran, err = b.worker.RunOnce(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	require.Len(t, failing.Heard(), 2)
	require.Len(t, fine.Heard(), 2)
	requireChange(t, c, consent.Authorised, at, failing.Heard()[1].Change)
	require.NoError(t, superuser(t, b).QueryRow(b.ctx, `SELECT state, attempts FROM consent.jobs WHERE kind = $1`, consent.JobNotify).Scan(&state, &attempts))
	require.Equal(t, "done", state)
	require.Equal(t, 2, attempts)
}

func (b bundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, superuser(t, b).QueryRow(b.ctx, query, args...).Scan(&n))
	return n
}

func TestListConsentsWithAServiceToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := ids.New("cli")
	alice := ids.New("usr")
	mine1 := newConsentFor(t, b, b.client, alice, 24*time.Hour)
	mine2 := newConsentFor(t, b, b.client, ids.New("usr"), 24*time.Hour)
	theirs := newConsentFor(t, b, other, alice, 24*time.Hour)
	_, _, err := authorise(b, mine2, ids.New("con"))
	require.NoError(t, err)

	_, err = b.svc.ListConsents(b.ctx, serviceP, "", consent.Filter{}, consent.Page{Limit: 50})
	requireInvalid(t, err, "client_id")

	for _, tc := range []struct {
		name   string
		client string
		f      consent.Filter
		want   []string
	}{
		{"a client's consents", b.client, consent.Filter{}, newestFirst(mine1.ID, mine2.ID)},
		{"another client's consents", other, consent.Filter{}, []string{theirs.ID}},
		{"a client's consents of a user another client shares the id of", b.client, consent.Filter{UserID: alice}, []string{mine1.ID}},
		{"a client's AUTHORISED consents", b.client, consent.Filter{Status: consent.Authorised}, []string{mine2.ID}},
		{"a client with no consents", ids.New("cli"), consent.Filter{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := b.svc.ListConsents(b.ctx, serviceP, tc.client, tc.f, consent.Page{Limit: 50})
			require.NoError(t, err)
			require.Equal(t, tc.want, consentIDs(cs))
			for _, c := range cs {
				require.Equal(t, tc.client, c.ClientID)
			}
		})
	}

	t.Run("through the API, as the extraction service lists a user's AUTHORISED consents", func(t *testing.T) {
		resp, err := b.grpc.ListConsents(caller.With(b.ctx, serviceP), &consentv1.ListConsentsRequest{
			ClientId: other, UserId: alice, Status: consentv1.ConsentStatus_CONSENT_STATUS_AWAITING_AUTHORISATION,
		})
		require.NoError(t, err)
		require.Len(t, resp.GetConsents(), 1)
		require.Equal(t, theirs.ID, resp.GetConsents()[0].GetId())
		_, err = b.grpc.ListConsents(caller.With(b.ctx, serviceP), &consentv1.ListConsentsRequest{})
		requireInvalid(t, err, "client_id")
	})
}
