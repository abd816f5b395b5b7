package scaleout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"puente.dev/services/puente/suite/suitetest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// jobQueues are the services that run background jobs, each from the jobs table of its schema.
var jobQueues = []string{"connection", "consent", "extraction", "sync", "webhook"}

// receiver is an integrator's webhook endpoint: it answers 200 and counts each event's
// arrivals.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int // arrivals by event id
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var env struct {
			ID string `json:"id"`
		}
		body, _ := io.ReadAll(req.Body)
		_ = json.Unmarshal(body, &env)
		r.mu.Lock()
		r.seen[env.ID]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) arrivals() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// job is a row of a jobs table.
type job struct {
	id       int64
	kind     string
	state    string
	attempts int
	pid      int
	due      bool
}

func (c *cluster) jobs(t *testing.T, db *pgx.Conn, schema string) []job {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT id, kind, state, attempts, coalesce(split_part(locked_by, '/', 2), ''),
			run_at <= now() + interval '10 seconds'
		FROM `+pgx.Identifier{schema, "jobs"}.Sanitize()+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (job, error) {
		var j job
		var pid string
		err := r.Scan(&j.id, &j.kind, &j.state, &j.attempts, &pid, &j.due)
		j.pid, _ = strconv.Atoi(pid)
		return j, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// settled reports whether no job is due or running, and none failed: every piece of work that
// was asked for is done (jobs scheduled later, like the expiry of a year-long consent, wait).
func settled(js []job) (bool, string) {
	var pending []string
	for _, j := range js {
		if j.state == "failed" || (j.due && (j.state == "available" || j.state == "running")) {
			pending = append(pending, fmt.Sprintf("%d %s %s", j.id, j.kind, j.state))
		}
	}
	return len(pending) == 0, strings.Join(pending, ", ")
}

// TestTwoProcessesOfEveryServiceShareTheWorkAndDrainOnSIGTERM runs two processes of each of the
// seven services over one database, each service's two behind one DNS name. A first round of
// load shows that both processes of every service take calls and run jobs, each job once and
// each webhook once; a second round stops one process of every service with SIGTERM while it
// runs, and every request still answers 2xx and every piece of work still ends.
func TestTwoProcessesOfEveryServiceShareTheWorkAndDrainOnSIGTERM(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 2)
	db, err := pgx.Connect(ctx, c.database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	pids := map[int]*process{}
	for _, ps := range c.procs {
		for _, p := range ps {
			pids[p.pid()] = p
		}
	}

	a, institution, err := setupTenant(ctx, c.lb, c.admin)
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	if err := a.call(ctx, http.MethodPost, "/v1/webhook-endpoints", map[string]any{"url": rcv.srv.URL + "/hooks", "request_id": "hook"}, nil); err != nil {
		t.Fatal(err)
	}

	// everythingDelivered waits until the jobs of every queue are settled and every event in the
	// log has reached the receiver, and returns the events delivered more than once.
	everythingDelivered := func(t *testing.T) (events int, duplicates map[string]int) {
		t.Helper()
		for _, q := range jobQueues {
			suitetest.WaitUntil(t, 60*time.Second, q+" jobs settle", func() (bool, string) { return settled(c.jobs(t, db, q)) })
		}
		suitetest.WaitUntil(t, 60*time.Second, "every event reaches the receiver", func() (bool, string) {
			rows, err := db.Query(ctx, `SELECT id FROM webhook.events`)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			got := rcv.arrivals()
			var missing []string
			for _, id := range ids {
				if got[id] == 0 {
					missing = append(missing, id)
				}
			}
			events = len(ids)
			return len(missing) == 0, fmt.Sprintf("%d of %d events missing: %v", len(missing), len(ids), missing)
		})
		duplicates = map[string]int{}
		for id, n := range rcv.arrivals() {
			if n > 1 {
				duplicates[id] = n
			}
		}
		return events, duplicates
	}

	// ---- Round 1: no process stops.
	var started atomic.Int32
	start := time.Now()
	w1, err := a.load(ctx, "r1", institution, 24, 8, &started)
	if err != nil {
		t.Fatalf("round 1: %v", err)
	}
	events1, dups1 := everythingDelivered(t)
	t.Logf("round 1: %d users linked, extracted and synced, %d consents expired, %d events delivered in %s", len(w1.flows), len(w1.expiring), events1, time.Since(start).Round(time.Millisecond))
	if len(dups1) > 0 {
		t.Errorf("round 1: events delivered twice without any process stopping: %v", dups1)
	}
	boundary := map[string]int64{}
	for _, q := range jobQueues {
		perPid := map[int]int{}
		for _, j := range c.jobs(t, db, q) {
			boundary[q] = max(boundary[q], j.id)
			if j.state != "done" {
				continue
			}
			if j.attempts != 1 {
				t.Errorf("%s job %d (%s) ran %d times", q, j.id, j.kind, j.attempts)
			}
			p := pids[j.pid]
			if p == nil || p.service != q {
				t.Errorf("%s job %d (%s) was run by pid %d, not a %s process", q, j.id, j.kind, j.pid, q)
				continue
			}
			perPid[j.pid]++
		}
		var counts []string
		for _, p := range c.procs[q] {
			counts = append(counts, fmt.Sprintf("%s: %d", p, perPid[p.pid()]))
			if perPid[p.pid()] == 0 {
				t.Errorf("%s ran no job of its queue", p)
			}
		}
		t.Logf("round 1 jobs done per process: %s", strings.Join(counts, ", "))
	}
	// Every process of every service took calls: the DNS name of each balances per call.
	for _, name := range []string{"authtoken", "webhook", "consent", "connection", "extraction", "sync"} {
		var counts []string
		for _, p := range c.procs[name] {
			n := p.rpcsServed(t)
			counts = append(counts, fmt.Sprintf("%s: %.0f", p, n))
			if n == 0 {
				t.Errorf("%s served no call", p)
			}
		}
		t.Logf("round 1 calls served: %s (%d DNS lookups of %s.puente.test)", strings.Join(counts, ", "), c.dns.lookups(name+".puente.test"), name)
	}
	served, _ := c.lb.stats()
	for _, p := range c.procs["gateway"] {
		if served[p.http] == 0 {
			t.Errorf("%s answered no REST call", p)
		}
	}
	t.Logf("round 1 REST calls per gateway: %v", served)
	if t.Failed() {
		t.FailNow()
	}

	// ---- Round 2: the first process of every service gets SIGTERM while the load runs.
	started.Store(0)
	type outcome struct {
		w   workload
		err error
	}
	done := make(chan outcome, 1)
	start = time.Now()
	go func() {
		w, err := a.load(ctx, "r2", institution, 24, 8, &started)
		done <- outcome{w, err}
	}()
	suitetest.WaitUntil(t, 60*time.Second, "round 2 is under way", func() (bool, string) {
		n := started.Load()
		return n >= 8, strconv.Itoa(int(n))
	})
	var stopped []*process
	var drains sync.WaitGroup
	took := make([]time.Duration, len(jobQueues)+2)
	for i, name := range []string{"gateway", "authtoken", "webhook", "consent", "connection", "extraction", "sync"} {
		p := c.procs[name][0]
		stopped = append(stopped, p)
		drains.Go(func() { took[i] = p.stop(t) })
	}
	drains.Wait()
	var drained []string
	for i, p := range stopped {
		drained = append(drained, fmt.Sprintf("%s %s", p.service, took[i].Round(time.Millisecond)))
		if p.err != nil {
			t.Errorf("%s exited with %v", p, p.err)
		}
		if took[i] > drainTimeout+time.Second {
			t.Errorf("%s took %s to exit, past its drain timeout of %s", p, took[i], drainTimeout)
		}
		if _, ok := p.logs.first(`msg=draining`); !ok {
			t.Errorf("%s logged no drain:\n%s", p, p.logs.tail())
		}
	}
	t.Logf("round 2: SIGTERM to one process of each service; exit after %s", strings.Join(drained, ", "))
	out := <-done
	if out.err != nil {
		t.Fatalf("round 2, a request failed or work was lost: %v", out.err)
	}
	events2, dups2 := everythingDelivered(t)
	served, refused := c.lb.stats()
	t.Logf("round 2: %d users linked, extracted and synced, %d consents expired, %d events in all delivered in %s; %d connections refused by a stopping gateway and sent to the other; REST calls per gateway %v",
		len(out.w.flows), len(out.w.expiring), events2, time.Since(start).Round(time.Millisecond), refused, served)
	var again []string
	for _, q := range jobQueues {
		perPid := map[int]int{}
		for _, j := range c.jobs(t, db, q) {
			if j.id <= boundary[q] || j.state != "done" {
				continue
			}
			perPid[j.pid]++
			if j.attempts > 1 {
				again = append(again, fmt.Sprintf("%s %s ×%d", q, j.kind, j.attempts))
			}
		}
		var counts []string
		for _, p := range c.procs[q] {
			counts = append(counts, fmt.Sprintf("%s: %d", p, perPid[p.pid()]))
		}
		t.Logf("round 2 jobs done per process: %s", strings.Join(counts, ", "))
	}
	sort.Strings(again)
	t.Logf("round 2: jobs run more than once (at least once, across the SIGTERM): %d %v; events delivered more than once: %d %v", len(again), again, len(dups2), dups2)
}
