package sandbox_test

import (
	"context"
	"testing"
	"time"

	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// clock is a fake clock tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// driver plays the connection service: it keeps the Login, feeds back the State of every
// outcome, and counts the rounds answered the way the service does (an answer counts once the
// service has it, before the provider is called).
type driver struct {
	t     *testing.T
	p     *sandbox.Provider
	clock *clock
	l     connection.Login
	last  connection.Outcome
}

func newDriver(t *testing.T, institution, username, password string) *driver {
	t.Helper()
	return newDriverCreds(t, institution, map[string]string{"username": username, "password": password})
}

func newDriverCreds(t *testing.T, institution string, creds map[string]string) *driver {
	t.Helper()
	c := &clock{now: t0}
	p := sandbox.New(sandbox.WithClock(c.Now))
	return &driver{
		t:     t,
		p:     p,
		clock: c,
		l: connection.Login{
			ConnectionID: "con_01JTESTCONNECTION",
			Institution:  mustInstitution(t, p, institution),
			Credentials:  creds,
		},
	}
}

func mustInstitution(t *testing.T, p *sandbox.Provider, externalID string) connection.Institution {
	t.Helper()
	insts, err := p.Institutions(context.Background())
	if err != nil {
		t.Fatalf("Institutions: %v", err)
	}
	for _, inst := range insts {
		if inst.ExternalID == externalID {
			return inst
		}
	}
	t.Fatalf("no institution %q in the catalog", externalID)
	return connection.Institution{}
}

func (d *driver) start() connection.Outcome {
	d.t.Helper()
	out, err := d.p.Start(context.Background(), d.l)
	return d.record(out, err, "Start")
}

func (d *driver) answer(answers map[string]string) connection.Outcome {
	d.t.Helper()
	if d.last.Status != connection.WaitingMFA {
		d.t.Fatalf("answering while the login is %s", d.last.Status)
	}
	d.l.Round++
	out, err := d.p.Answer(context.Background(), d.l, answers)
	return d.record(out, err, "Answer")
}

func (d *driver) poll() connection.Outcome {
	d.t.Helper()
	if d.last.Status != connection.Running {
		d.t.Fatalf("polling while the login is %s", d.last.Status)
	}
	out, err := d.p.Poll(context.Background(), d.l)
	return d.record(out, err, "Poll")
}

// record checks the invariants every outcome keeps and remembers it.
func (d *driver) record(out connection.Outcome, err error, call string) connection.Outcome {
	d.t.Helper()
	if err != nil {
		d.t.Fatalf("%s: %v", call, err)
	}
	switch out.Status {
	case connection.WaitingMFA:
		if out.Challenge == nil {
			d.t.Fatalf("%s: WAITING_MFA without a challenge", call)
		}
		if out.Challenge.Round != d.l.Round+1 {
			d.t.Errorf("%s: challenge round %d, want Login.Round+1 = %d", call, out.Challenge.Round, d.l.Round+1)
		}
		if out.Reason != connection.NoReason || len(out.State) == 0 {
			d.t.Errorf("%s: WAITING_MFA with reason %q and %d bytes of state", call, out.Reason, len(out.State))
		}
	case connection.Running:
		if out.PollAfter <= 0 || len(out.State) == 0 {
			d.t.Errorf("%s: RUNNING with PollAfter %v and %d bytes of state", call, out.PollAfter, len(out.State))
		}
	case connection.Succeeded:
		if out.Reason != connection.NoReason || out.Challenge != nil {
			d.t.Errorf("%s: SUCCEEDED with reason %q, challenge %v", call, out.Reason, out.Challenge)
		}
	case connection.Failed:
		if out.Reason == connection.NoReason || out.Challenge != nil {
			d.t.Errorf("%s: FAILED with reason %q, challenge %v", call, out.Reason, out.Challenge)
		}
	default:
		d.t.Fatalf("%s: unexpected status %q", call, out.Status)
	}
	if out.UpstreamCode == "" || out.Message == "" {
		d.t.Errorf("%s: outcome without an upstream code or message: %+v", call, out)
	}
	if out.State != nil {
		d.l.State = out.State
	}
	d.last = out
	return out
}

// want is the part of an outcome a test checks.
type want struct {
	status connection.Status
	reason connection.Reason
	code   string
}

func (w want) check(t *testing.T, what string, out connection.Outcome) {
	t.Helper()
	got := want{out.Status, out.Reason, out.UpstreamCode}
	if got != w {
		t.Fatalf("%s: got %s %q %q, want %s %q %q (message %q)", what, got.status, got.reason, got.code, w.status, w.reason, w.code, out.Message)
	}
}

var (
	wantSucceeded = want{connection.Succeeded, connection.NoReason, "200"}
	wantMFA       = want{connection.WaitingMFA, connection.NoReason, "410"}
	wantRunning   = want{connection.Running, connection.NoReason, "102"}
)

func failedWith(r connection.Reason, code string) want { return want{connection.Failed, r, code} }
