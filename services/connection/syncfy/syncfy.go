// Package syncfy is the connection side of Syncfy (Mexico): its catalogue of sites as
// institutions, and logins as Syncfy credentials whose job Puente polls, code by code, through
// two-factor rounds (code 410) to a final code.
package syncfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"puente.dev/pkg/upstream"
	"puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/connection"
)

// Name is the provider id.
const Name = syncfy.Name

// logoBase is where organization images live (the seed: "sólo es necesario concatenarlo a la
// base https://s.syncfy.com").
const logoBase = "https://s.syncfy.com"

// products are what a Syncfy bank site yields.
var products = []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}

// Provider implements connection.Provider over Syncfy.
type Provider struct {
	api *syncfy.Client
	now func() time.Time
}

var _ connection.Provider = (*Provider)(nil)

// New returns the provider.
func New(api *syncfy.Client) *Provider { return &Provider{api: api, now: time.Now} }

func (p *Provider) Name() string { return Name }

// Institutions implements connection.Provider: every site of a bank-like organization.
func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	countries, err := p.api.Countries(ctx)
	if err != nil {
		return nil, err
	}
	types, err := p.api.OrganizationTypes(ctx)
	if err != nil {
		return nil, err
	}
	orgs, err := p.api.Organizations(ctx)
	if err != nil {
		return nil, err
	}
	sites, err := p.api.Sites(ctx)
	if err != nil {
		return nil, err
	}
	countryCode := map[string]string{}
	for _, c := range countries {
		countryCode[c.IDCountry] = c.Code
	}
	linked := map[string]bool{}
	for _, t := range types {
		linked[t.ID] = slices.Contains(syncfy.LinkedOrganizationTypes, t.Name)
	}
	orgByID := map[string]syncfy.Organization{}
	for _, o := range orgs {
		orgByID[o.ID] = o
	}
	var out []connection.Institution
	for _, s := range sites {
		org, ok := orgByID[s.IDOrganization]
		if !ok || !linked[org.IDType] || countryCode[org.IDCountry] == "" {
			continue
		}
		in := connection.Institution{
			Provider: Name, ExternalID: s.ID, OrganizationID: org.ID, OrganizationName: org.Name, Name: s.Name,
			Country: countryCode[org.IDCountry], Personal: bool(s.IsPersonal), Business: bool(s.IsBusiness),
			Products: slices.Clone(products), Auth: connection.Credentials, Health: connection.Operational,
		}
		if org.Avatar != "" {
			in.LogoURL = logoBase + org.Avatar
		}
		for _, e := range s.Credentials {
			in.Fields = append(in.Fields, field(e))
		}
		out = append(out, in)
	}
	return out, nil
}

func field(e syncfy.AuthElement) connection.CredentialField {
	f := connection.CredentialField{Name: e.Name, Label: e.Label, Required: e.Required, IsUsername: e.Username, IsToken: e.Token}
	switch e.Type {
	case "password":
		f.Type = connection.Password
	case "select":
		f.Type = connection.Select
		for _, o := range e.Options {
			f.Options = append(f.Options, connection.Option{Value: o.Value, Label: o.Label})
		}
	default: // text, and any type Syncfy adds later: a plain input is the safe guess
		f.Type = connection.Text
	}
	if e.Validation != nil {
		f.Validation = *e.Validation
	}
	return f
}

// state is what the provider keeps between calls (sealed by the connection service).
type state struct {
	IDUser       string `json:"id_user"`
	IDCredential string `json:"id_credential"`
	IDJob        string `json:"id_job"`
	Status       string `json:"status"`
	Twofa        string `json:"twofa"`
	WS           string `json:"ws,omitempty"`
	// Answered is the history length when the last 410 was answered: that 410 is not asked again.
	Answered int `json:"answered,omitempty"`
}

func (s state) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// Start implements connection.Provider: find or create the user's Syncfy user, post the site's
// form, and poll the job.
func (p *Provider) Start(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	if l.UserID == "" {
		return connection.Outcome{}, errors.New("syncfy: login without a user")
	}
	idUser, err := p.api.UserID(ctx, l.UserID)
	if err != nil {
		return connection.Outcome{}, err // nothing was created: the job may retry
	}
	j, err := p.api.CreateCredential(ctx, idUser, l.Institution.ExternalID, l.Credentials)
	if err != nil {
		// The POST is not repeated: it may have reached Syncfy. The login ends here.
		return failure(err), nil
	}
	st := state{IDUser: idUser, IDCredential: j.IDCredential, IDJob: j.IDJob, Status: j.Status, Twofa: j.Twofa, WS: j.WS}
	return connection.Outcome{Status: connection.Running, UpstreamCode: "100", Message: syncfy.Codes[100].Message,
		PollAfter: p.api.PollAfter(), State: st.encode()}, nil
}

// Poll implements connection.Provider: the last code of the job's history decides.
func (p *Provider) Poll(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	var st state
	if err := json.Unmarshal(l.State, &st); err != nil || st.Status == "" {
		return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: "the Syncfy login state is unreadable"}, nil
	}
	hist, err := p.api.JobStatus(ctx, st.IDUser, st.Status)
	if err != nil {
		if syncfy.IsTemporary(err) {
			return connection.Outcome{}, err // a status read is safe to repeat
		}
		return failure(err), nil
	}
	last := hist[len(hist)-1]
	if last.Code == 410 && len(hist) <= st.Answered {
		// The answer is on its way: the job has not moved past the 410 answered.
		return connection.Outcome{Status: connection.Running, UpstreamCode: "103", PollAfter: p.api.PollAfter()}, nil
	}
	return p.outcome(l, st, hist, last), nil
}

// outcome maps a job's last status.
func (p *Provider) outcome(l connection.Login, st state, hist []syncfy.JobStatus, last syncfy.JobStatus) connection.Outcome {
	c := syncfy.Lookup(last.Code)
	out := connection.Outcome{Status: connection.Status(c.Status), Reason: connection.Reason(c.Reason),
		UpstreamCode: fmt.Sprint(last.Code), Message: c.Message}
	switch out.Status {
	case connection.Running:
		out.PollAfter = p.api.PollAfter()
	case connection.WaitingMFA:
		ch, ok := challenge(last, l.Round+1, p.now().Add(syncfy.ChallengeWindow))
		if !ok {
			return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, UpstreamCode: out.UpstreamCode,
				Message: "Syncfy asked for a second factor without saying which"}
		}
		out.Challenge = ch
		if last.Address != "" {
			st.Twofa = last.Address
		}
		st.Answered = 0
		out.State = st.encode()
	}
	return out
}

// challenge builds a Challenge from a 410's twofa elements.
func challenge(s syncfy.JobStatus, round int, expires time.Time) (*connection.Challenge, bool) {
	ch := &connection.Challenge{Round: round, ExpiresAt: expires.UTC()}
	for _, e := range s.Twofa {
		if e.Name == "" {
			continue
		}
		f := connection.ChallengeField{Name: e.Name, Label: e.Label}
		switch e.Type {
		case "password":
			f.Type = connection.ChallengePassword
		case "options":
			f.Type = connection.ChallengeOptions
			for _, o := range e.Options {
				f.Options = append(f.Options, connection.Option{Value: o.Value, Label: o.Label, Image: syncfy.ImageBase64(o.ImgBase64File)})
			}
		default:
			f.Type = connection.ChallengeText
		}
		if e.ImgBase64File != "" && ch.Image == "" {
			ch.Image = syncfy.ImageBase64(e.ImgBase64File)
		}
		ch.Fields = append(ch.Fields, f)
	}
	return ch, len(ch.Fields) > 0
}

// Answer implements connection.Provider: post the answers to the job's twofa URL, then poll.
func (p *Provider) Answer(ctx context.Context, l connection.Login, answers map[string]string) (connection.Outcome, error) {
	var st state
	if err := json.Unmarshal(l.State, &st); err != nil || st.Twofa == "" {
		return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: "the Syncfy login state is unreadable"}, nil
	}
	if err := p.api.Twofa(ctx, st.IDUser, st.Twofa, answers); err != nil {
		// Whether the answer arrived or not (the job may have timed out), the job's status says
		// what happens next: a new 410 asks again, 411 ends the login.
		return connection.Outcome{Status: connection.Running, PollAfter: p.api.PollAfter(), Message: "the two-factor answer was not accepted; reading the job's status"}, nil
	}
	hist, err := p.api.JobStatus(ctx, st.IDUser, st.Status)
	if err == nil {
		st.Answered = len(hist)
		if last := hist[len(hist)-1]; last.Code != 410 {
			st.Answered = 0
			out := p.outcome(l, st, hist, last)
			if out.State == nil {
				out.State = st.encode()
			}
			return out, nil
		}
	}
	return connection.Outcome{Status: connection.Running, UpstreamCode: "103", Message: syncfy.Codes[103].Message,
		PollAfter: p.api.PollAfter(), State: st.encode()}, nil
}

// failure is how a call that failed for good ends a login.
func failure(err error) connection.Outcome {
	kind := syncfy.KindOf(err)
	msg := "Syncfy could not be reached"
	switch kind {
	case upstream.BadResponse:
		msg = "Syncfy answered something Puente could not read"
	case upstream.Timeout:
		msg = "Syncfy did not answer in time"
	case upstream.Unauthorized:
		msg = "Syncfy refused Puente's credentials"
	case upstream.Rejected:
		msg = "Syncfy refused the login request"
		if ue, ok := upstream.AsError(err); ok && ue.Status == 400 {
			return connection.Outcome{Status: connection.Failed, Reason: connection.InvalidCredentials, UpstreamCode: string(kind), Message: "Syncfy refused the credentials' form"}
		}
	}
	return connection.Outcome{Status: connection.Failed, Reason: connection.InstitutionUnavailable, UpstreamCode: string(kind), Message: msg}
}

// Authorize implements connection.Provider: Syncfy has no redirect institutions.
func (p *Provider) Authorize(context.Context, connection.Login, string, string) (connection.Redirection, error) {
	return connection.Redirection{}, errors.New("syncfy: no redirect institutions")
}

// Callback implements connection.Provider: Syncfy has no redirect institutions.
func (p *Provider) Callback(context.Context, connection.Login, map[string]string) (connection.Outcome, error) {
	return connection.Outcome{}, errors.New("syncfy: no redirect institutions")
}
