package connection_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"puente.dev/services/connection"
)

// fakeProviderName is the provider id the fake registers under.
const fakeProviderName = "fake"

// fakeInstitution is the fake's one CREDENTIALS institution.
var fakeInstitution = connection.Institution{
	ExternalID: "fake-bank", OrganizationID: "org-fake", OrganizationName: "Fake Group", Name: "Fake Bank",
	Country: "CL", Personal: true, Products: []string{"ACCOUNTS"}, Auth: connection.Credentials,
	Fields: []connection.CredentialField{
		{Name: "username", Type: connection.Text, Label: "User", Required: true, IsUsername: true},
		{Name: "password", Type: connection.Password, Label: "Password", Required: true},
	},
	Sources: []string{"web"}, Health: connection.Operational,
}

// providerCall is one call the service made to the fake.
type providerCall struct {
	Method       string // "Start", "Answer" or "Poll"
	ConnectionID string
	Institution  string // the institution's external id
	Credentials  map[string]string
	State        string
	Round        int
	Answers      map[string]string
}

// scripted is one planned answer of the fake: to a call of method, out or err. A repeating step
// answers every such call from then on.
type scripted struct {
	method string
	out    connection.Outcome
	err    error
	repeat bool
}

// fakeProvider is a Provider scripted by the test: each Start, Answer or Poll takes the next
// step of the script, which must be for that method. It records every call. Calls come from the
// job worker's goroutines, so everything is under mu, and a surprise is reported with t.Errorf.
type fakeProvider struct {
	t *testing.T

	mu     sync.Mutex
	script []scripted
	calls  []providerCall
}

var _ connection.Provider = (*fakeProvider)(nil)

// newFakeProvider returns a fake whose script must be used up by the end of the test.
func newFakeProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{t: t}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.script {
			if !s.repeat {
				t.Errorf("fake provider: scripted %s was never called", s.method)
			}
		}
	})
	return p
}

// on adds to the script: the next call of method answers out.
func (p *fakeProvider) on(method string, out connection.Outcome) *fakeProvider {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = append(p.script, scripted{method: method, out: out})
	return p
}

// alwaysFail makes every call of method, from this point of the script on, fail with err.
func (p *fakeProvider) alwaysFail(method string, err error) *fakeProvider {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = append(p.script, scripted{method: method, err: err, repeat: true})
	return p
}

// Calls returns the calls made so far.
func (p *fakeProvider) Calls() []providerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// CallsOf returns the calls of method made so far.
func (p *fakeProvider) CallsOf(method string) []providerCall {
	var out []providerCall
	for _, c := range p.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (p *fakeProvider) call(method string, l connection.Login, answers map[string]string) (connection.Outcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, providerCall{
		Method: method, ConnectionID: l.ConnectionID, Institution: l.Institution.ExternalID,
		Credentials: maps.Clone(l.Credentials), State: string(l.State), Round: l.Round, Answers: maps.Clone(answers),
	})
	if len(p.script) == 0 {
		p.t.Errorf("fake provider: unexpected %s (script used up)", method)
		return connection.Outcome{}, errors.New("fake provider: script used up")
	}
	next := p.script[0]
	if next.method != method {
		p.t.Errorf("fake provider: got %s, the script expects %s", method, next.method)
		return connection.Outcome{}, fmt.Errorf("fake provider: unexpected %s", method)
	}
	if !next.repeat {
		p.script = p.script[1:]
	}
	return next.out, next.err
}

func (p *fakeProvider) Name() string { return fakeProviderName }

func (p *fakeProvider) Institutions(context.Context) ([]connection.Institution, error) {
	return []connection.Institution{fakeInstitution}, nil
}

func (p *fakeProvider) Start(_ context.Context, l connection.Login) (connection.Outcome, error) {
	return p.call("Start", l, nil)
}

func (p *fakeProvider) Answer(_ context.Context, l connection.Login, answers map[string]string) (connection.Outcome, error) {
	return p.call("Answer", l, answers)
}

func (p *fakeProvider) Poll(_ context.Context, l connection.Login) (connection.Outcome, error) {
	return p.call("Poll", l, nil)
}

func (p *fakeProvider) Authorize(context.Context, connection.Login, string, string) (connection.Redirection, error) {
	p.t.Errorf("fake provider: unexpected Authorize (its institution is CREDENTIALS)")
	return connection.Redirection{}, errors.New("fake provider: no redirects")
}

func (p *fakeProvider) Callback(context.Context, connection.Login, map[string]string) (connection.Outcome, error) {
	p.t.Errorf("fake provider: unexpected Callback (its institution is CREDENTIALS)")
	return connection.Outcome{}, errors.New("fake provider: no redirects")
}
