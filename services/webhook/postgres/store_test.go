package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/page"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/services/webhook"
	whpg "puente.dev/services/webhook/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is one test's store over its own freshly migrated database.
type bundle struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *whpg.Store
	now   time.Time // a base time, at the database's (microsecond) precision
}

func setup(t *testing.T) bundle {
	t.Helper()
	ctx := t.Context()
	dbURL := pgtest.NewDatabase(t)
	require.NoError(t, whpg.Migrate(ctx, dbURL))
	pool, err := postgres.Open(ctx, dbURL, whpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return bundle{ctx: ctx, pool: pool, store: whpg.New(pool), now: time.Now().UTC().Truncate(time.Microsecond)}
}

// newEndpoint stores an enabled endpoint of client taking types (none: every event).
func newEndpoint(t *testing.T, b bundle, clientID string, types ...string) webhook.Endpoint {
	t.Helper()
	id := ids.New("whe")
	got, err := b.store.CreateEndpoint(b.ctx, webhook.Endpoint{
		ID: id, ClientID: clientID, URL: "https://example.com/hooks/" + id, EventTypes: types, Enabled: true,
		Description: "test", Secret: []byte("sealed:" + id), CreatedAt: b.now, UpdatedAt: b.now,
	}, webhook.MaxEndpoints)
	require.NoError(t, err)
	require.Equal(t, id, got.ID)
	return got
}

func newEvent(clientID, typ, flowID string, at time.Time) webhook.Event {
	return webhook.Event{
		ID: ids.New("evt"), Type: typ, Version: 1, CreatedAt: at, FlowID: flowID, ClientID: clientID,
		Data: json.RawMessage(`{"flow_id":"` + flowID + `"}`),
	}
}

func record(t *testing.T, b bundle, at time.Time, events ...webhook.Event) int {
	t.Helper()
	n, err := b.store.Record(b.ctx, events, "", at)
	require.NoError(t, err)
	return n
}

// delivery is a deliveries row, read under the store.
type delivery struct {
	ID, ClientID, EventID, EndpointID string
	Status                            webhook.DeliveryStatus
	Attempts                          int
	NextAttemptAt                     *time.Time
	WindowStart, CreatedAt            time.Time
	DeliveredAt                       *time.Time
	Generation                        int
}

func deliveriesWhere(t *testing.T, b bundle, where string, args ...any) []delivery {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT id, client_id, event_id, endpoint_id, status, attempts, next_attempt_at, window_start,
		created_at, delivered_at, generation FROM deliveries WHERE `+where+` ORDER BY id`, args...)
	require.NoError(t, err)
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (d delivery, err error) {
		err = r.Scan(&d.ID, &d.ClientID, &d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.WindowStart,
			&d.CreatedAt, &d.DeliveredAt, &d.Generation)
		return d, err
	})
	require.NoError(t, err)
	return ds
}

// byEndpoint reads the deliveries of an event, by endpoint id.
func byEndpoint(t *testing.T, b bundle, eventID string) map[string]delivery {
	t.Helper()
	out := map[string]delivery{}
	for _, d := range deliveriesWhere(t, b, "event_id = $1", eventID) {
		out[d.EndpointID] = d
	}
	return out
}

func deliveryOf(t *testing.T, b bundle, eventID, endpointID string) delivery {
	t.Helper()
	ds := deliveriesWhere(t, b, "event_id = $1 AND endpoint_id = $2", eventID, endpointID)
	require.Len(t, ds, 1, "deliveries of %s to %s", eventID, endpointID)
	return ds[0]
}

func deliveryByID(t *testing.T, b bundle, id string) delivery {
	t.Helper()
	ds := deliveriesWhere(t, b, "id = $1", id)
	require.Len(t, ds, 1, "delivery %s", id)
	return ds[0]
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// job is a row of the service's job queue.
type job struct {
	Kind, State, DeliveryID string
	Due                     bool // run_at <= now()
}

func jobsOf(t *testing.T, b bundle, deliveryID string) []job {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT kind, state, coalesce(args->>'delivery_id', ''), run_at <= now() FROM jobs
		WHERE args->>'delivery_id' = $1 ORDER BY id`, deliveryID)
	require.NoError(t, err)
	js, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (j job, err error) {
		err = r.Scan(&j.Kind, &j.State, &j.DeliveryID, &j.Due)
		return j, err
	})
	require.NoError(t, err)
	return js
}

// requirePendingJob checks that the delivery has exactly one job waiting, of the right kind.
func requirePendingJob(t *testing.T, b bundle, deliveryID string) {
	t.Helper()
	var pending []job
	for _, j := range jobsOf(t, b, deliveryID) {
		if j.State == "available" || j.State == "running" {
			pending = append(pending, j)
		}
	}
	require.Len(t, pending, 1, "pending jobs of delivery %s", deliveryID)
	require.Equal(t, webhook.JobDeliver, pending[0].Kind)
	require.Equal(t, deliveryID, pending[0].DeliveryID)
}

func countJobs(t *testing.T, b bundle, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM jobs WHERE `+where, args...).Scan(&n))
	return n
}

// finishJobs marks every job done, as the workers would once each delivery's run is over.
func finishJobs(t *testing.T, b bundle) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `UPDATE jobs SET state = 'done', finished_at = now(), locked_until = NULL, locked_by = NULL`)
	require.NoError(t, err)
}

func requireTime(t *testing.T, want time.Time, got *time.Time, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	require.True(t, want.Equal(*got), "got %s, want %s: %v", *got, want, fmt.Sprint(msgAndArgs...))
}

func attempt(n int, at time.Time, code int) webhook.Attempt {
	a := webhook.Attempt{Number: n, At: at, StatusCode: code, Latency: time.Duration(100+n) * time.Millisecond, ResponseBody: fmt.Sprintf("body %d", n)}
	if code < 200 || code > 299 {
		a.Error = fmt.Sprintf("the endpoint answered %d", code)
	}
	return a
}

func recordAttempt(t *testing.T, b bundle, deliveryID string, a webhook.Attempt, status webhook.DeliveryStatus, nextAt *time.Time) (recorded bool) {
	t.Helper()
	// The attempt is the current generation's, as the delivery job's would be.
	var generation int
	_ = b.pool.QueryRow(b.ctx, `SELECT generation FROM deliveries WHERE id = $1`, deliveryID).Scan(&generation)
	recorded, err := b.store.RecordAttempt(b.ctx, deliveryID, generation, a, status, nextAt)
	require.NoError(t, err)
	return recorded
}

func eventIDs(es []webhook.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// ---- Record

func TestRecordIsExactlyOnceByEventID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep := newEndpoint(t, b, client)
	batch := []webhook.Event{
		newEvent(client, "connection.created", "con_1", b.now),
		newEvent(client, "connection.status_changed", "con_1", b.now.Add(time.Second)),
		newEvent(client, "consent.created", "cns_1", b.now.Add(2*time.Second)),
	}

	require.Equal(t, 3, record(t, b, b.now, batch...))
	first := map[string]delivery{}
	for _, e := range batch {
		first[e.ID] = deliveryOf(t, b, e.ID, ep.ID)
	}

	// The relay sends the batch again (it could not know the first send was taken).
	require.Equal(t, 0, record(t, b, b.now.Add(time.Minute), batch...), "a batch already recorded records nothing")
	for _, e := range batch {
		require.Equal(t, first[e.ID], deliveryOf(t, b, e.ID, ep.ID), "no second delivery for %s, and the first is untouched", e.ID)
		requirePendingJob(t, b, first[e.ID].ID)
		got, err := b.store.GetEvent(b.ctx, client, e.ID)
		require.NoError(t, err)
		require.True(t, got.CreatedAt.Equal(e.CreatedAt))
	}
	require.Len(t, deliveriesWhere(t, b, "true"), 3)
	require.Equal(t, 3, countJobs(t, b, "true"))

	// A batch mixing old and new events records only the new ones.
	fresh := newEvent(client, "consent.created", "cns_2", b.now.Add(3*time.Second))
	require.Equal(t, 1, record(t, b, b.now, batch[1], fresh, batch[0]))
	require.Len(t, deliveriesWhere(t, b, "true"), 4)
	requirePendingJob(t, b, deliveryOf(t, b, fresh.ID, ep.ID).ID)

	// The same event id twice within one batch is one event.
	twice := newEvent(client, "consent.created", "cns_3", b.now)
	require.Equal(t, 1, record(t, b, b.now, twice, twice))
	require.Len(t, deliveriesWhere(t, b, "event_id = $1", twice.ID), 1)
}

func TestRecordNumbersEventsInRecordingOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, other := ids.New("cli"), ids.New("cli")
	// created_at runs backwards: seq follows recording, not creation.
	a := newEvent(client, "connection.created", "con_1", b.now.Add(5*time.Second))
	c := newEvent(other, "connection.created", "con_2", b.now.Add(4*time.Second))
	d := newEvent(client, "connection.created", "con_1", b.now.Add(3*time.Second))
	e := newEvent(client, "connection.created", "con_1", b.now.Add(2*time.Second))
	f := newEvent(client, "connection.created", "con_1", b.now.Add(1*time.Second))
	record(t, b, b.now, a, c, d)
	record(t, b, b.now, e)
	record(t, b, b.now, a, f) // a again: keeps its number

	seqs := map[string]int64{}
	for _, ev := range []webhook.Event{a, c, d, e, f} {
		got, err := b.store.GetEvent(b.ctx, ev.ClientID, ev.ID)
		require.NoError(t, err)
		seqs[ev.ID] = got.Seq
	}
	require.Less(t, seqs[a.ID], seqs[c.ID])
	require.Less(t, seqs[c.ID], seqs[d.ID])
	require.Less(t, seqs[d.ID], seqs[e.ID])
	require.Less(t, seqs[e.ID], seqs[f.ID])

	got, err := b.store.ListEvents(b.ctx, client, webhook.EventFilter{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []string{a.ID, d.ID, e.ID, f.ID}, eventIDs(got), "the feed is in seq order")
	for _, ev := range got {
		require.Equal(t, seqs[ev.ID], ev.Seq)
	}
}

func TestRecordDeliversToEnabledEndpointsThatWantTheType(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, other := ids.New("cli"), ids.New("cli")
	exact := newEndpoint(t, b, client, "connection.status_changed")
	prefix := newEndpoint(t, b, client, "connection.*")
	star := newEndpoint(t, b, client, "*")
	all := newEndpoint(t, b, client)
	consents := newEndpoint(t, b, client, "consent.*", "webhook.test")
	bare := newEndpoint(t, b, client, "connection") // neither an exact match nor a prefix
	disabled := newEndpoint(t, b, client)
	_, err := b.store.UpdateEndpoint(b.ctx, client, disabled.ID, b.now, func(e *webhook.Endpoint) error {
		e.Enabled = false
		return nil
	})
	require.NoError(t, err)
	othersAll := newEndpoint(t, b, other)

	at := b.now.Add(time.Minute)
	status := newEvent(client, "connection.status_changed", "con_1", b.now)
	created := newEvent(client, "connection.created", "con_1", b.now)
	consent := newEvent(client, "consent.created", "cns_1", b.now)
	lookalike := newEvent(client, "connectionx.created", "con_2", b.now) // not under "connection."
	foreign := newEvent(other, "connection.status_changed", "con_9", b.now)
	require.Equal(t, 5, record(t, b, at, status, created, consent, lookalike, foreign))

	for _, c := range []struct {
		event webhook.Event
		want  []string
	}{
		{status, []string{exact.ID, prefix.ID, star.ID, all.ID}},
		{created, []string{prefix.ID, star.ID, all.ID}},
		{consent, []string{star.ID, all.ID, consents.ID}},
		{lookalike, []string{star.ID, all.ID}},
		{foreign, []string{othersAll.ID}},
	} {
		got := byEndpoint(t, b, c.event.ID)
		require.ElementsMatch(t, c.want, keys(got), "endpoints given %s", c.event.Type)
		for _, d := range got {
			require.Equal(t, c.event.ClientID, d.ClientID)
			require.Equal(t, webhook.Pending, d.Status)
			require.Zero(t, d.Attempts)
			requireTime(t, at, d.NextAttemptAt, "next_attempt_at of a new delivery")
			require.True(t, d.WindowStart.Equal(at), "window_start")
			require.True(t, d.CreatedAt.Equal(at), "created_at")
			require.Nil(t, d.DeliveredAt)
			requirePendingJob(t, b, d.ID)
		}
	}
	require.Empty(t, deliveriesWhere(t, b, "endpoint_id = ANY($1)", []string{bare.ID, disabled.ID}))
	require.Equal(t, 13, countJobs(t, b, "kind = $1 AND state = 'available'", webhook.JobDeliver), "one job per delivery")
}

func TestRecordOnlyToOneEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	target := newEndpoint(t, b, client, "webhook.test")
	bystander := newEndpoint(t, b, client)
	typed := newEndpoint(t, b, client, "webhook.*")

	ev := newEvent(client, "webhook.test", target.ID, b.now)
	n, err := b.store.Record(b.ctx, []webhook.Event{ev}, target.ID, b.now)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := byEndpoint(t, b, ev.ID)
	require.Equal(t, []string{target.ID}, keys(got), "a test event goes to its endpoint alone, not to %s or %s", bystander.ID, typed.ID)
	requirePendingJob(t, b, got[target.ID].ID)

	// The event is in the log like any other.
	list, err := b.store.ListEvents(b.ctx, client, webhook.EventFilter{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{ev.ID}, eventIDs(list))
}

// ---- the event feed

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, other := ids.New("cli"), ids.New("cli")
	e1 := newEvent(client, "connection.created", "f1", b.now)
	e2 := newEvent(client, "connection.status_changed", "f1", b.now)
	x1 := newEvent(other, "connection.created", "f1", b.now) // same type and flow, another client
	e3 := newEvent(client, "consent.created", "f2", b.now)
	e4 := newEvent(client, "consent.status_changed", "f1", b.now)
	x2 := newEvent(other, "consent.created", "f2", b.now)
	e5 := newEvent(client, "webhook.test", "f3", b.now)
	record(t, b, b.now, e1, e2, x1)
	record(t, b, b.now, e3, e4, x2, e5)

	list := func(f webhook.EventFilter) []string {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 100
		}
		got, err := b.store.ListEvents(b.ctx, client, f)
		require.NoError(t, err)
		for _, e := range got {
			require.Equal(t, client, e.ClientID, "another client's event %s", e.ID)
		}
		return eventIDs(got)
	}
	seq := func(e webhook.Event) int64 {
		got, err := b.store.GetEvent(b.ctx, e.ClientID, e.ID)
		require.NoError(t, err)
		return got.Seq
	}

	require.Equal(t, []string{e1.ID, e2.ID, e3.ID, e4.ID, e5.ID}, list(webhook.EventFilter{}))
	require.Equal(t, []string{e1.ID}, list(webhook.EventFilter{Types: []string{"connection.created"}}), "exact type")
	require.Equal(t, []string{e1.ID, e2.ID}, list(webhook.EventFilter{Types: []string{"connection.*"}}), "prefix")
	require.Equal(t, []string{e3.ID, e4.ID, e5.ID}, list(webhook.EventFilter{Types: []string{"consent.*", "webhook.test"}}), "prefix and exact")
	require.Equal(t, []string{e2.ID, e4.ID}, list(webhook.EventFilter{Types: []string{"connection.status_changed", "consent.status_changed"}}))
	require.Empty(t, list(webhook.EventFilter{Types: []string{"connection"}}), "a type without .* is exact")
	require.Empty(t, list(webhook.EventFilter{Types: []string{"payment.*"}}))

	require.Equal(t, []string{e1.ID, e2.ID, e4.ID}, list(webhook.EventFilter{FlowID: "f1"}), "flow id")
	require.Equal(t, []string{e4.ID}, list(webhook.EventFilter{FlowID: "f1", Types: []string{"consent.*"}}), "flow id and type")
	require.Empty(t, list(webhook.EventFilter{FlowID: "f9"}))

	require.Equal(t, []string{e3.ID, e4.ID, e5.ID}, list(webhook.EventFilter{AfterSeq: seq(e2)}), "after a seq")
	require.Equal(t, []string{e3.ID}, list(webhook.EventFilter{AfterSeq: seq(e2), Types: []string{"consent.created"}}))
	require.Empty(t, list(webhook.EventFilter{AfterSeq: seq(e5)}))

	// Paging through the feed with a cursor.
	require.Equal(t, []string{e1.ID, e2.ID}, list(webhook.EventFilter{Limit: 2}))
	require.Equal(t, []string{e3.ID, e4.ID}, list(webhook.EventFilter{Limit: 2, AfterSeq: seq(e2)}))
	require.Equal(t, []string{e5.ID}, list(webhook.EventFilter{Limit: 2, AfterSeq: seq(e4)}))

	// The other client sees its own events only.
	got, err := b.store.ListEvents(b.ctx, other, webhook.EventFilter{Limit: 100, FlowID: "f1"})
	require.NoError(t, err)
	require.Equal(t, []string{x1.ID}, eventIDs(got))

	// The envelope comes back as recorded.
	ev, err := b.store.GetEvent(b.ctx, client, e3.ID)
	require.NoError(t, err)
	require.Equal(t, e3.Type, ev.Type)
	require.Equal(t, e3.Version, ev.Version)
	require.Equal(t, e3.FlowID, ev.FlowID)
	require.True(t, e3.CreatedAt.Equal(ev.CreatedAt))
	require.JSONEq(t, string(e3.Data), string(ev.Data))
}

// A prefix filter matches the prefix literally, as Endpoint.Wants does: "_" (allowed in event
// types) is not a wildcard.
func TestListEventsTypePrefixIsLiteral(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	want := newEvent(client, "tax_id.updated", "f1", b.now)
	lookalike := newEvent(client, "taxxid.updated", "f1", b.now)
	record(t, b, b.now, want, lookalike)

	filter := "tax_id.*"
	require.True(t, webhook.Endpoint{EventTypes: []string{filter}}.Wants(want.Type))
	require.False(t, webhook.Endpoint{EventTypes: []string{filter}}.Wants(lookalike.Type))
	got, err := b.store.ListEvents(b.ctx, client, webhook.EventFilter{Types: []string{filter}, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{want.ID}, eventIDs(got), "%q matches %q only", filter, want.Type)
}

// ---- isolation between clients

func TestAnotherClientsIDsReadAsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, intruder := ids.New("cli"), ids.New("cli")
	ep := newEndpoint(t, b, client)
	ownEp := newEndpoint(t, b, intruder)
	ev := newEvent(client, "connection.created", "con_1", b.now)
	ownEv := newEvent(intruder, "connection.created", "con_2", b.now)
	failed := newEvent(client, "connection.created", "con_1", b.now)
	record(t, b, b.now, ev, ownEv, failed)
	pending := deliveryOf(t, b, ev.ID, ep.ID)
	failedD := deliveryOf(t, b, failed.ID, ep.ID)
	recordAttempt(t, b, failedD.ID, attempt(1, b.now, 500), webhook.Failed, nil)
	finishJobs(t, b)

	_, err := b.store.GetEndpoint(b.ctx, intruder, ep.ID)
	require.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	_, err = b.store.GetEvent(b.ctx, intruder, ev.ID)
	require.ErrorIs(t, err, webhook.ErrEventNotFound)

	eps, err := b.store.ListEndpoints(b.ctx, intruder, page.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, eps, 1)
	require.Equal(t, ownEp.ID, eps[0].ID)
	evs, err := b.store.ListEvents(b.ctx, intruder, webhook.EventFilter{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []string{ownEv.ID}, eventIDs(evs))

	for _, f := range []webhook.DeliveryFilter{{EventID: ev.ID}, {EndpointID: ep.ID}, {EventID: ev.ID, EndpointID: ep.ID}} {
		ds, err := b.store.ListDeliveries(b.ctx, intruder, f, page.Page{Limit: 100})
		require.NoError(t, err)
		require.Empty(t, ds, "filter %+v", f)
	}
	ds, err := b.store.ListDeliveries(b.ctx, intruder, webhook.DeliveryFilter{}, page.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, ds, 1, "the intruder's own delivery only")
	require.Equal(t, ownEv.ID, ds[0].EventID)

	called := false
	_, err = b.store.UpdateEndpoint(b.ctx, intruder, ep.ID, b.now, func(e *webhook.Endpoint) error {
		called = true
		e.Enabled = false
		return nil
	})
	require.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	require.False(t, called, "fn never sees another client's endpoint")

	require.ErrorIs(t, b.store.DeleteEndpoint(b.ctx, intruder, ep.ID, b.now), webhook.ErrEndpointNotFound)

	_, err = b.store.Redeliver(b.ctx, intruder, ev.ID, "", b.now)
	require.ErrorIs(t, err, webhook.ErrEventNotFound)
	_, err = b.store.Redeliver(b.ctx, intruder, failed.ID, ownEp.ID, b.now)
	require.ErrorIs(t, err, webhook.ErrEventNotFound, "another client's event, to one's own endpoint")
	_, err = b.store.Redeliver(b.ctx, intruder, ownEv.ID, ep.ID, b.now)
	require.ErrorIs(t, err, webhook.ErrEndpointNotFound, "one's own event, to another client's endpoint")

	n, err := b.store.RedeliverFailed(b.ctx, intruder, ep.ID, b.now.Add(-time.Hour), b.now)
	require.NoError(t, err)
	require.Zero(t, n)

	// Nothing of the client's changed.
	got, err := b.store.GetEndpoint(b.ctx, client, ep.ID)
	require.NoError(t, err)
	require.True(t, got.Enabled)
	require.Equal(t, pending, deliveryByID(t, b, pending.ID))
	require.Equal(t, webhook.Failed, deliveryByID(t, b, failedD.ID).Status)
	require.Empty(t, deliveriesWhere(t, b, "event_id = $1 AND endpoint_id = $2", ownEv.ID, ep.ID))
	require.Empty(t, deliveriesWhere(t, b, "event_id = $1 AND endpoint_id = $2", failed.ID, ownEp.ID))
	require.Zero(t, countJobs(t, b, "state = 'available'"), "no job was queued")
}

// ---- endpoints

func TestDisablingAnEndpointFailsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep, kept := newEndpoint(t, b, client), newEndpoint(t, b, client)
	e1, e2, e3 := newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, e1, e2, e3)
	delivered := deliveryOf(t, b, e3.ID, ep.ID)
	recordAttempt(t, b, delivered.ID, attempt(1, b.now.Add(time.Second), 200), webhook.Delivered, nil)
	retrying := deliveryOf(t, b, e2.ID, ep.ID)
	next := b.now.Add(time.Hour)
	recordAttempt(t, b, retrying.ID, attempt(1, b.now.Add(time.Second), 503), webhook.Pending, &next)

	// An update that keeps it enabled fails nothing.
	at := b.now.Add(time.Minute)
	got, err := b.store.UpdateEndpoint(b.ctx, client, ep.ID, at, func(e *webhook.Endpoint) error {
		e.Description, e.EventTypes, e.UpdatedAt = "renamed", []string{"a.*"}, at
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "renamed", got.Description)
	require.Equal(t, []string{"a.*"}, got.EventTypes)
	require.Len(t, deliveriesWhere(t, b, "endpoint_id = $1 AND status = 'PENDING'", ep.ID), 2)

	got, err = b.store.UpdateEndpoint(b.ctx, client, ep.ID, at, func(e *webhook.Endpoint) error {
		e.Enabled, e.UpdatedAt = false, at
		return nil
	})
	require.NoError(t, err)
	require.False(t, got.Enabled)
	stored, err := b.store.GetEndpoint(b.ctx, client, ep.ID)
	require.NoError(t, err)
	require.False(t, stored.Enabled)
	require.Equal(t, "renamed", stored.Description)
	require.True(t, stored.UpdatedAt.Equal(at))

	for _, e := range []webhook.Event{e1, e2} {
		d := deliveryOf(t, b, e.ID, ep.ID)
		require.Equal(t, webhook.Failed, d.Status, "pending delivery of %s", e.ID)
		require.Nil(t, d.NextAttemptAt)
	}
	require.Equal(t, 1, deliveryOf(t, b, e2.ID, ep.ID).Attempts, "attempts are kept")
	require.Equal(t, webhook.Delivered, deliveryOf(t, b, e3.ID, ep.ID).Status, "a delivered one stays delivered")
	require.Len(t, deliveriesWhere(t, b, "endpoint_id = $1 AND status = 'PENDING'", kept.ID), 3, "another endpoint's deliveries are untouched")

	// A disabled endpoint is given no new events.
	e4 := newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, e4)
	require.Equal(t, []string{kept.ID}, keys(byEndpoint(t, b, e4.ID)))

	// A failing fn changes nothing.
	boom := errors.New("boom")
	_, err = b.store.UpdateEndpoint(b.ctx, client, kept.ID, at, func(e *webhook.Endpoint) error {
		e.Enabled = false
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Len(t, deliveriesWhere(t, b, "endpoint_id = $1 AND status = 'PENDING'", kept.ID), 4)
}

func TestDeletingAnEndpointFailsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep, kept := newEndpoint(t, b, client), newEndpoint(t, b, client)
	e1, e2 := newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, e1, e2)
	delivered := deliveryOf(t, b, e2.ID, ep.ID)
	recordAttempt(t, b, delivered.ID, attempt(1, b.now, 204), webhook.Delivered, nil)

	require.NoError(t, b.store.DeleteEndpoint(b.ctx, client, ep.ID, b.now.Add(time.Minute)))
	_, err := b.store.GetEndpoint(b.ctx, client, ep.ID)
	require.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	require.ErrorIs(t, b.store.DeleteEndpoint(b.ctx, client, ep.ID, b.now), webhook.ErrEndpointNotFound, "deleting twice")

	d := deliveryOf(t, b, e1.ID, ep.ID)
	require.Equal(t, webhook.Failed, d.Status)
	require.Nil(t, d.NextAttemptAt)
	require.Equal(t, webhook.Delivered, deliveryOf(t, b, e2.ID, ep.ID).Status)
	require.Len(t, deliveriesWhere(t, b, "endpoint_id = $1 AND status = 'PENDING'", kept.ID), 2)

	// The delivery's work now has no endpoint.
	w, err := b.store.Work(b.ctx, d.ID)
	require.NoError(t, err)
	require.Nil(t, w.Endpoint)
	require.Equal(t, e1.ID, w.Event.ID)
}

func TestCreateEndpointReplaysRequestID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, other := ids.New("cli"), ids.New("cli")
	mk := func(clientID, requestID, url string) webhook.Endpoint {
		t.Helper()
		id := ids.New("whe")
		got, err := b.store.CreateEndpoint(b.ctx, webhook.Endpoint{
			ID: id, ClientID: clientID, URL: url, EventTypes: []string{"connection.*"}, Enabled: true, RequestID: requestID,
			Secret: []byte("sealed:" + id), CreatedAt: b.now, UpdatedAt: b.now,
		}, webhook.MaxEndpoints)
		require.NoError(t, err)
		return got
	}

	first := mk(client, "req-1", "https://a.example/hook")
	require.Equal(t, "req-1", first.RequestID)
	again := mk(client, "req-1", "https://b.example/hook")
	require.Equal(t, first, again, "a repeated request id returns the first endpoint as it is")
	eps, err := b.store.ListEndpoints(b.ctx, client, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, eps, 1)

	require.NotEqual(t, first.ID, mk(other, "req-1", "https://a.example/hook").ID, "request ids are per client")
	require.NotEqual(t, first.ID, mk(client, "req-2", "https://a.example/hook").ID)
	x, y := mk(client, "", "https://a.example/hook"), mk(client, "", "https://a.example/hook")
	require.NotEqual(t, x.ID, y.ID, "no request id: no replay")
	require.Empty(t, x.RequestID)
}

// ---- attempts

func TestRecordAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep := newEndpoint(t, b, client)
	ev, other := newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, ev, other)
	d := deliveryOf(t, b, ev.ID, ep.ID)

	// A failed attempt with a retry ahead.
	t1, next := b.now.Add(time.Second), b.now.Add(time.Minute)
	require.True(t, recordAttempt(t, b, d.ID, attempt(1, t1, 500), webhook.Pending, &next))
	got := deliveryByID(t, b, d.ID)
	require.Equal(t, webhook.Pending, got.Status)
	require.Equal(t, 1, got.Attempts)
	requireTime(t, next, got.NextAttemptAt, "next_attempt_at")
	require.Nil(t, got.DeliveredAt)
	require.True(t, got.WindowStart.Equal(b.now), "the window is not restarted by a retry")

	// Delivered.
	t2 := b.now.Add(2 * time.Minute)
	require.True(t, recordAttempt(t, b, d.ID, attempt(2, t2, 200), webhook.Delivered, nil))
	got = deliveryByID(t, b, d.ID)
	require.Equal(t, webhook.Delivered, got.Status)
	require.Equal(t, 2, got.Attempts)
	requireTime(t, t2, got.DeliveredAt, "delivered_at")
	require.Nil(t, got.NextAttemptAt)
	done := got

	// A late attempt (a worker whose lease ran out, say) changes nothing, whatever it reports.
	next2 := b.now.Add(time.Hour)
	require.False(t, recordAttempt(t, b, d.ID, attempt(3, b.now.Add(3*time.Minute), 500), webhook.Pending, &next2))
	require.False(t, recordAttempt(t, b, d.ID, attempt(3, b.now.Add(3*time.Minute), 0), webhook.Failed, nil), "only the call that ends a delivery says so")
	require.Equal(t, done, deliveryByID(t, b, d.ID))
	list, err := b.store.ListDeliveries(b.ctx, client, webhook.DeliveryFilter{EventID: ev.ID}, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Len(t, list[0].History, 2, "the late attempt is not kept")
	require.Equal(t, 2, list[0].History[0].Number)
	require.Equal(t, 200, list[0].History[0].StatusCode)
	a1 := list[0].History[1]
	want := attempt(1, t1, 500)
	require.Equal(t, want.Number, a1.Number)
	require.True(t, want.At.Equal(a1.At))
	require.Equal(t, want.StatusCode, a1.StatusCode)
	require.Equal(t, want.Latency, a1.Latency)
	require.Equal(t, want.Error, a1.Error)
	require.Equal(t, want.ResponseBody, a1.ResponseBody)

	// Failed ends it too.
	od := deliveryOf(t, b, other.ID, ep.ID)
	recordAttempt(t, b, od.ID, attempt(1, t1, 0), webhook.Failed, nil)
	got = deliveryByID(t, b, od.ID)
	require.Equal(t, webhook.Failed, got.Status)
	require.Equal(t, 1, got.Attempts)
	require.Nil(t, got.NextAttemptAt)
	require.Nil(t, got.DeliveredAt)
	require.False(t, recordAttempt(t, b, od.ID, attempt(2, t2, 200), webhook.Delivered, nil))
	require.Equal(t, got, deliveryByID(t, b, od.ID), "a failed delivery is not revived by a late attempt")

	recorded, err := b.store.RecordAttempt(b.ctx, ids.New("dlv"), 0, attempt(1, t1, 200), webhook.Delivered, nil)
	require.NoError(t, err, "an unknown delivery is a no-op")
	require.False(t, recorded)
}

func TestListDeliveriesKeepsTheLatest20AttemptsNewestFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep := newEndpoint(t, b, client)
	ev, quiet := newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, ev, quiet)
	d := deliveryOf(t, b, ev.ID, ep.ID)
	for n := 1; n <= 25; n++ {
		next := b.now.Add(time.Duration(n+1) * time.Minute)
		recordAttempt(t, b, d.ID, attempt(n, b.now.Add(time.Duration(n)*time.Minute), 500), webhook.Pending, &next)
	}

	list, err := b.store.ListDeliveries(b.ctx, client, webhook.DeliveryFilter{EndpointID: ep.ID}, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 2)
	byID := map[string]webhook.Delivery{}
	for _, x := range list {
		byID[x.ID] = x
	}
	got := byID[d.ID]
	require.Equal(t, 25, got.Attempts)
	require.Len(t, got.History, 20)
	for i, a := range got.History {
		n := 25 - i
		require.Equal(t, n, a.Number, "history[%d]", i)
		require.True(t, b.now.Add(time.Duration(n)*time.Minute).Equal(a.At))
		require.Equal(t, time.Duration(100+n)*time.Millisecond, a.Latency)
		require.Equal(t, fmt.Sprintf("body %d", n), a.ResponseBody)
	}
	require.Empty(t, byID[deliveryOf(t, b, quiet.ID, ep.ID).ID].History, "no attempts yet")

	// Filters by status.
	pending, err := b.store.ListDeliveries(b.ctx, client, webhook.DeliveryFilter{Status: webhook.Pending}, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, pending, 2)
	none, err := b.store.ListDeliveries(b.ctx, client, webhook.DeliveryFilter{Status: webhook.Delivered}, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, none)
}

// ---- redelivery

func TestRedeliver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	e1, e2 := newEndpoint(t, b, client), newEndpoint(t, b, client)
	filtered := newEndpoint(t, b, client, "consent.*")
	ev := newEvent(client, "connection.created", "con_1", b.now)
	record(t, b, b.now, ev)
	d1, d2 := deliveryOf(t, b, ev.ID, e1.ID), deliveryOf(t, b, ev.ID, e2.ID)
	recordAttempt(t, b, d1.ID, attempt(1, b.now.Add(time.Second), 200), webhook.Delivered, nil)
	recordAttempt(t, b, d2.ID, attempt(1, b.now.Add(time.Second), 500), webhook.Failed, nil)
	finishJobs(t, b) // the workers are done with both

	at := b.now.Add(time.Hour)
	out, err := b.store.Redeliver(b.ctx, client, ev.ID, "", at)
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.ElementsMatch(t, []string{d1.ID, d2.ID}, []string{out[0].ID, out[1].ID}, "every endpoint the event went to; not %s", filtered.ID)
	for _, id := range []string{d1.ID, d2.ID} {
		d := deliveryByID(t, b, id)
		require.Equal(t, webhook.Pending, d.Status, id)
		require.True(t, d.WindowStart.Equal(at), "a fresh retry window")
		requireTime(t, at, d.NextAttemptAt)
		require.Nil(t, d.DeliveredAt)
		require.Equal(t, 1, d.Attempts, "attempt numbers go on")
		require.True(t, d.CreatedAt.Equal(b.now))
		requirePendingJob(t, b, id)
		require.Len(t, jobsOf(t, b, id), 2, "the old job and a new one")
	}
	for _, d := range out {
		require.Equal(t, webhook.Pending, d.Status)
		require.True(t, d.WindowStart.Equal(at))
	}

	// Still pending (waiting for a retry, say): tried again now, under a newer generation with
	// a job of its own; the earlier job will find itself stale.
	before := deliveryByID(t, b, d1.ID).Generation
	out, err = b.store.Redeliver(b.ctx, client, ev.ID, "", at.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.True(t, deliveryByID(t, b, d1.ID).WindowStart.Equal(at.Add(time.Minute)))
	require.Equal(t, before+1, deliveryByID(t, b, d1.ID).Generation)
	require.Len(t, jobsOf(t, b, d1.ID), 3)

	// To one endpoint only.
	recordAttempt(t, b, d1.ID, attempt(2, at, 200), webhook.Delivered, nil)
	recordAttempt(t, b, d2.ID, attempt(2, at, 200), webhook.Delivered, nil)
	finishJobs(t, b)
	at2 := at.Add(time.Hour)
	out, err = b.store.Redeliver(b.ctx, client, ev.ID, e2.ID, at2)
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, d2.ID, out[0].ID)
	require.Equal(t, webhook.Delivered, deliveryByID(t, b, d1.ID).Status)
	require.True(t, deliveryByID(t, b, d2.ID).WindowStart.Equal(at2))
	requirePendingJob(t, b, d2.ID)

	// To an endpoint that never had the event: one it filtered out, and one created since.
	later := newEndpoint(t, b, client)
	for _, ep := range []webhook.Endpoint{filtered, later} {
		out, err = b.store.Redeliver(b.ctx, client, ev.ID, ep.ID, at2)
		require.NoError(t, err)
		require.Len(t, out, 1, "redeliver to %s", ep.ID)
		d := deliveryOf(t, b, ev.ID, ep.ID)
		require.Equal(t, d.ID, out[0].ID)
		require.Equal(t, webhook.Pending, d.Status)
		require.Equal(t, client, d.ClientID)
		require.True(t, d.WindowStart.Equal(at2))
		requireTime(t, at2, d.NextAttemptAt)
		requirePendingJob(t, b, d.ID)
	}

	// A disabled endpoint is refused; unknown ids are not found.
	_, err = b.store.UpdateEndpoint(b.ctx, client, e1.ID, at2, func(e *webhook.Endpoint) error {
		e.Enabled = false
		return nil
	})
	require.NoError(t, err)
	_, err = b.store.Redeliver(b.ctx, client, ev.ID, e1.ID, at2)
	require.ErrorIs(t, err, webhook.ErrEndpointDisabled)
	require.Equal(t, webhook.Delivered, deliveryByID(t, b, d1.ID).Status)
	_, err = b.store.Redeliver(b.ctx, client, ev.ID, ids.New("whe"), at2)
	require.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	_, err = b.store.Redeliver(b.ctx, client, ids.New("evt"), "", at2)
	require.ErrorIs(t, err, webhook.ErrEventNotFound)
}

// A delivery failed by disabling its endpoint while it waited for a retry still has that retry's
// job, snoozed until then. Redelivering it once the endpoint is enabled again must not wait
// for that job: the delivery is due now.
func TestRedeliverAfterDisablingIsDueNow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep := newEndpoint(t, b, client)
	e1, e2 := newEvent(client, "a.b", "f", b.now), newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, e1, e2)

	// What the worker does after a failed attempt: record it, and snooze the job until the retry.
	next := time.Now().Add(6 * time.Hour)
	var retrying []string
	for _, e := range []webhook.Event{e1, e2} {
		d := deliveryOf(t, b, e.ID, ep.ID)
		recordAttempt(t, b, d.ID, attempt(1, b.now, 503), webhook.Pending, &next)
		_, err := b.pool.Exec(b.ctx, `UPDATE jobs SET run_at = $2 WHERE args->>'delivery_id' = $1`, d.ID, next)
		require.NoError(t, err)
		retrying = append(retrying, d.ID)
	}

	setEnabled := func(on bool) {
		_, err := b.store.UpdateEndpoint(b.ctx, client, ep.ID, b.now, func(e *webhook.Endpoint) error {
			e.Enabled = on
			return nil
		})
		require.NoError(t, err)
	}
	setEnabled(false)
	setEnabled(true)
	for _, id := range retrying {
		require.Equal(t, webhook.Failed, deliveryByID(t, b, id).Status)
	}

	at := time.Now().UTC().Truncate(time.Microsecond)
	out, err := b.store.Redeliver(b.ctx, client, e1.ID, ep.ID, at)
	require.NoError(t, err)
	require.Len(t, out, 1)
	n, err := b.store.RedeliverFailed(b.ctx, client, ep.ID, b.now.Add(-time.Hour), at)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	for _, id := range retrying {
		d := deliveryByID(t, b, id)
		require.Equal(t, webhook.Pending, d.Status)
		requireTime(t, at, d.NextAttemptAt)
		due := false
		for _, j := range jobsOf(t, b, id) {
			due = due || (j.State == "available" && j.Due)
		}
		require.True(t, due, "delivery %s is due now, but its only job waits for the old retry: %+v", id, jobsOf(t, b, id))
	}
}

func TestRedeliverFailed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep, other := newEndpoint(t, b, client), newEndpoint(t, b, client)
	t0, since, t2 := b.now, b.now.Add(time.Hour), b.now.Add(2*time.Hour)

	old := newEvent(client, "a.b", "f", t0)
	record(t, b, t0, old) // its deliveries were created before since
	edge := newEvent(client, "a.b", "f", since)
	record(t, b, since, edge) // ... exactly at since
	failed, delivered, pending := newEvent(client, "a.b", "f", t2), newEvent(client, "a.b", "f", t2), newEvent(client, "a.b", "f", t2)
	record(t, b, t2, failed, delivered, pending)

	fail := func(e webhook.Event, endpointID string) string {
		d := deliveryOf(t, b, e.ID, endpointID)
		recordAttempt(t, b, d.ID, attempt(1, t2, 500), webhook.Failed, nil)
		return d.ID
	}
	oldD := fail(old, ep.ID)
	edgeD := fail(edge, ep.ID)
	failedD := fail(failed, ep.ID)
	otherD := fail(failed, other.ID)
	deliveredD := deliveryOf(t, b, delivered.ID, ep.ID).ID
	recordAttempt(t, b, deliveredD, attempt(1, t2, 200), webhook.Delivered, nil)
	pendingD := deliveryOf(t, b, pending.ID, ep.ID)
	finishJobs(t, b)

	at := b.now.Add(3 * time.Hour)
	n, err := b.store.RedeliverFailed(b.ctx, client, ep.ID, since, at)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	for _, id := range []string{edgeD, failedD} {
		d := deliveryByID(t, b, id)
		require.Equal(t, webhook.Pending, d.Status, id)
		require.True(t, d.WindowStart.Equal(at))
		requireTime(t, at, d.NextAttemptAt)
		requirePendingJob(t, b, id)
	}
	require.Equal(t, webhook.Failed, deliveryByID(t, b, oldD).Status, "created before since")
	require.Equal(t, webhook.Failed, deliveryByID(t, b, otherD).Status, "another endpoint's")
	require.Equal(t, webhook.Delivered, deliveryByID(t, b, deliveredD).Status)
	require.Equal(t, pendingD, deliveryByID(t, b, pendingD.ID), "a pending delivery keeps its window")
	require.Equal(t, 2, countJobs(t, b, "state = 'available'"), "jobs for the two requeued deliveries only")

	// Nothing failed is left to requeue.
	n, err = b.store.RedeliverFailed(b.ctx, client, ep.ID, since, at)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 2, countJobs(t, b, "state = 'available'"))
}

// ---- retention

func TestPruneDeletesOldEventsWithTheirDeliveriesAndAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	ep := newEndpoint(t, b, client)
	before := b.now.Add(-24 * time.Hour)
	old := newEvent(client, "a.b", "f", b.now.Add(-48*time.Hour))
	edge := newEvent(client, "a.b", "f", before) // created exactly at the cut: kept
	fresh := newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, old, edge, fresh)
	for _, e := range []webhook.Event{old, edge, fresh} {
		d := deliveryOf(t, b, e.ID, ep.ID)
		next := b.now.Add(time.Minute)
		recordAttempt(t, b, d.ID, attempt(1, b.now, 500), webhook.Pending, &next)
	}
	oldD := deliveryOf(t, b, old.ID, ep.ID)

	n, err := b.store.Prune(b.ctx, before)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, err = b.store.GetEvent(b.ctx, client, old.ID)
	require.ErrorIs(t, err, webhook.ErrEventNotFound)
	require.Empty(t, deliveriesWhere(t, b, "event_id = $1", old.ID))
	var attempts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1`, oldD.ID).Scan(&attempts))
	require.Zero(t, attempts)
	_, err = b.store.Work(b.ctx, oldD.ID)
	require.ErrorIs(t, err, webhook.ErrDeliveryNotFound)

	for _, e := range []webhook.Event{edge, fresh} {
		_, err := b.store.GetEvent(b.ctx, client, e.ID)
		require.NoError(t, err)
		ds, err := b.store.ListDeliveries(b.ctx, client, webhook.DeliveryFilter{EventID: e.ID}, page.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Len(t, ds[0].History, 1)
	}

	n, err = b.store.Prune(b.ctx, before)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestPruneDeletesMoreThanOneBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := ids.New("cli")
	events := make([]webhook.Event, 2345)
	for i := range events {
		events[i] = newEvent(client, "a.b", "f", b.now.Add(-time.Duration(i+1)*time.Second))
	}
	require.Equal(t, len(events), record(t, b, b.now, events...))
	keep := newEvent(client, "a.b", "f", b.now)
	record(t, b, b.now, keep)

	n, err := b.store.Prune(b.ctx, b.now)
	require.NoError(t, err)
	require.Equal(t, int64(len(events)), n)
	left, err := b.store.ListEvents(b.ctx, client, webhook.EventFilter{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{keep.ID}, eventIDs(left))
}

func TestAClientHasAtMostMaxEndpointsButReplaysStillAnswer(t *testing.T) {
	b := setup(t)
	client := ids.New("cli")
	mk := func(requestID string) (webhook.Endpoint, error) {
		id := ids.New("whe")
		return b.store.CreateEndpoint(b.ctx, webhook.Endpoint{
			ID: id, ClientID: client, URL: "https://example.com/" + id, Enabled: true, RequestID: requestID,
			Secret: []byte("sealed:" + id), CreatedAt: b.now, UpdatedAt: b.now,
		}, 3)
	}
	first, err := mk("req-1")
	require.NoError(t, err)
	for range 2 {
		_, err := mk("")
		require.NoError(t, err)
	}
	_, err = mk("")
	require.ErrorIs(t, err, webhook.ErrEndpointLimit)
	again, err := mk("req-1")
	require.NoError(t, err, "a retry of a create that succeeded answers even at the limit")
	require.Equal(t, first.ID, again.ID)
	_, err = b.store.CreateEndpoint(b.ctx, webhook.Endpoint{ID: ids.New("whe"), ClientID: ids.New("cli"), URL: "https://example.com/x", Enabled: true, Secret: []byte("s"), CreatedAt: b.now, UpdatedAt: b.now}, 3)
	require.NoError(t, err, "the limit is per client")
}
