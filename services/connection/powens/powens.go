// Package powens links users through Powens (ex Budget Insight) with its custom connection
// protocol: a temporary Powens user per login, the connector's sources added one after the
// other in priority order, the connection states (OTP, decoupled validation, SCA, ...), the
// user's choice of the accounts to share (they arrive disabled), and the temporary token turned
// into a permanent one when the login succeeds. Credentials connectors are CREDENTIALS
// institutions; webauth connectors are REDIRECT institutions that go through /webauth.
package powens

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	api "puente.dev/pkg/upstream/powens"

	"puente.dev/pkg/upstream"
	"puente.dev/services/connection"
)

// Name is the provider id.
const Name = "powens"

// Options tune a Provider; zero values take the defaults.
type Options struct {
	// ChallengeTTL is how long the user has to answer a challenge (default 5 minutes; never
	// past the temporary token's expiry).
	ChallengeTTL time.Duration
	// PollAfter is the wait between polls of a decoupled validation (default 3 s).
	PollAfter time.Duration
	// MaxPolls bounds the polls of a decoupled validation before it fails MFA_TIMEOUT (default 100).
	MaxPolls int
	Now      func() time.Time
}

// Provider is Powens' connection.Provider and connection.Revoker.
type Provider struct {
	api *api.Client
	o   Options
}

// New returns the provider over client.
func New(client *api.Client, o Options) *Provider {
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = 5 * time.Minute
	}
	if o.PollAfter <= 0 {
		o.PollAfter = 3 * time.Second
	}
	if o.MaxPolls <= 0 {
		o.MaxPolls = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Provider{api: client, o: o}
}

var (
	_ connection.Provider = (*Provider)(nil)
	_ connection.Revoker  = (*Provider)(nil)
)

func (p *Provider) Name() string { return Name }

// ---- catalogue

// Institutions lists the connectors: one institution each.
func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	connectors, err := p.api.Connectors(ctx)
	if err != nil {
		return nil, err
	}
	var out []connection.Institution
	for _, c := range connectors {
		if in, ok := institution(c); ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// institution maps a connector; one without a usable mechanism or source is left out.
func institution(c api.Connector) (connection.Institution, bool) {
	if c.Hidden || c.UUID == "" {
		return connection.Institution{}, false
	}
	in := connection.Institution{
		ExternalID: c.UUID, OrganizationID: c.UUID, OrganizationName: c.Name, Name: c.Name, Personal: true,
		Products: []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"}, Health: connection.Operational,
	}
	if len(c.Countries) > 0 {
		in.Country = strings.ToUpper(c.Countries[0].ID)
	}
	var mechanism string
	switch c.AuthMechanism {
	case "credentials":
		in.Auth, mechanism = connection.Credentials, "credentials"
	case "webauth":
		in.Auth, mechanism = connection.Redirect, "webauth"
	default:
		return connection.Institution{}, false
	}
	in.Fields = Fields(c.Fields, mechanism)
	in.Sources = Sources(c.Sources)
	if len(c.Sources) > 0 && len(in.Sources) == 0 {
		return connection.Institution{}, false // every source disabled
	}
	return in, true
}

// Sources are the names of the usable sources (disabled null), lowest priority first.
func Sources(sources []api.ConnectorSource) []string {
	usable := slices.DeleteFunc(slices.Clone(sources), func(s api.ConnectorSource) bool { return s.Disabled != nil || s.Name == "" })
	sort.SliceStable(usable, func(i, j int) bool { return usable[i].Priority < usable[j].Priority })
	var out []string
	for _, s := range usable {
		out = append(out, s.Name)
	}
	return out
}

// Fields are the connector's fields that apply to mechanism ("credentials" or "webauth"); a
// field that names no mechanism applies to credentials.
func Fields(fields []api.Field, mechanism string) []connection.CredentialField {
	var out []connection.CredentialField
	for _, f := range fields {
		applies := slices.Contains(f.AuthMechanisms, mechanism) || (len(f.AuthMechanisms) == 0 && mechanism == "credentials")
		if !applies || f.Name == "" {
			continue
		}
		out = append(out, Field(f))
	}
	return out
}

// Field maps one field: text, password, list (SELECT), date and number (TEXT with a format).
func Field(f api.Field) connection.CredentialField {
	cf := connection.CredentialField{Name: f.Name, Label: f.Label, Description: f.Description, Required: f.Required, Validation: re2(f.Regex)}
	if cf.Label == "" {
		cf.Label = f.Name
	}
	switch f.Type {
	case "password":
		cf.Type = connection.Password
	case "list":
		cf.Type = connection.Select
		for _, v := range f.Values {
			cf.Options = append(cf.Options, connection.Option{Value: v.Value, Label: v.Label})
		}
		cf.Validation = ""
	case "date":
		cf.Type = connection.Text
		if cf.Validation == "" {
			cf.Validation = `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
		}
		if cf.Description == "" {
			cf.Description = "YYYY-MM-DD"
		}
	case "number":
		cf.Type = connection.Text
		if cf.Validation == "" {
			cf.Validation = `^[0-9]+$`
		}
	default: // text
		cf.Type = connection.Text
		cf.IsUsername = f.Name == "login" || f.Name == "username"
	}
	return cf
}

// re2 keeps a regex Go can run (Powens' are PCRE-flavoured); one it cannot is dropped, and
// Powens checks the value itself.
func re2(expr string) string {
	if expr == "" {
		return ""
	}
	if _, err := regexp.Compile(expr); err != nil {
		return ""
	}
	return expr
}

// ---- the login

// Start creates a temporary user and the connection for the first source.
func (p *Provider) Start(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	auth, err := p.api.Init(ctx)
	if err != nil {
		return p.failed(ctx, api.Session{}, err), nil
	}
	s := api.Session{User: auth.IDUser, Temporary: auth.AuthToken, TemporaryExpiry: auth.Expiry(p.o.Now())}
	var first string
	if len(l.Institution.Sources) > 0 {
		first, s.Pending = l.Institution.Sources[0], slices.Clone(l.Institution.Sources[1:])
	}
	con, err := p.api.CreateConnection(ctx, s.Temporary, l.Institution.ExternalID, first, l.Credentials)
	if err != nil {
		// wrongpass: Powens deleted the connection already; the user goes with it.
		return p.failed(ctx, s, err), nil
	}
	s.Connection = con.ID
	return p.advance(ctx, l, s, con), nil
}

// Authorize creates a temporary user and sends the browser to /webauth with a code for it.
func (p *Provider) Authorize(ctx context.Context, l connection.Login, state, callbackURL string) (connection.Redirection, error) {
	auth, err := p.api.Init(ctx)
	if err != nil {
		return connection.Redirection{}, err
	}
	s := api.Session{User: auth.IDUser, Temporary: auth.AuthToken, TemporaryExpiry: auth.Expiry(p.o.Now())}
	code, err := p.api.Code(ctx, s.Temporary)
	if err != nil {
		p.discard(ctx, s)
		return connection.Redirection{}, err
	}
	var first string
	if len(l.Institution.Sources) > 0 {
		first, s.Pending = l.Institution.Sources[0], slices.Clone(l.Institution.Sources[1:])
	}
	u := p.api.WebauthURL(code, callbackURL, l.Institution.ExternalID, first, state, l.Credentials)
	return connection.Redirection{URL: u, State: s.Encode()}, nil
}

// Callback continues a webauth login with what Powens sent back: id_connection, or error.
func (p *Provider) Callback(ctx context.Context, l connection.Login, params map[string]string) (connection.Outcome, error) {
	s, err := api.ParseSession(l.State)
	if err != nil {
		return internal(err.Error()), nil
	}
	if code := params["error"]; code != "" {
		p.discard(ctx, s)
		return connection.Outcome{Status: connection.Failed, Reason: connection.RedirectDenied, UpstreamCode: upstreamCode(code),
			Message: "the user did not authorise access at the bank"}, nil
	}
	id, err := strconv.ParseInt(params["id_connection"], 10, 64)
	if err != nil || id <= 0 {
		p.discard(ctx, s)
		return internal("Powens sent the user back without a connection"), nil
	}
	con, err := p.api.Connection(ctx, s.Temporary, id, "sources")
	if err != nil {
		return p.failed(ctx, s, err), nil
	}
	s.Connection = con.ID
	return p.advance(ctx, l, s, con), nil
}

// Answer hands over the connection's fields (an OTP), or the user's choice of accounts.
func (p *Provider) Answer(ctx context.Context, l connection.Login, answers map[string]string) (connection.Outcome, error) {
	s, err := api.ParseSession(l.State)
	if err != nil {
		return internal(err.Error()), nil
	}
	switch s.Phase {
	case api.PhaseMFA:
		con, err := p.api.UpdateConnection(ctx, s.Temporary, s.Connection, "", answers)
		if err != nil {
			if e, ok := upstream.AsError(err); ok && e.Code == "wrongpass" {
				p.discard(ctx, s)
				return connection.Outcome{Status: connection.Failed, Reason: connection.MFAFailed, UpstreamCode: "wrongpass",
					Message: "the bank refused the code"}, nil
			}
			return p.failedAnswering(ctx, s, err), nil
		}
		return p.advance(ctx, l, s, con), nil
	case api.PhaseAccounts:
		return p.activate(ctx, l, s, answers), nil
	}
	return internal("an answer came while no challenge was pending"), nil
}

// Poll follows a decoupled validation: resume it, then read the connection until Powens is done.
func (p *Provider) Poll(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	s, err := api.ParseSession(l.State)
	if err != nil {
		return internal(err.Error()), nil
	}
	s.Polls++
	if s.Polls > p.o.MaxPolls {
		p.discard(ctx, s)
		return connection.Outcome{Status: connection.Failed, Reason: connection.MFATimeout, UpstreamCode: s.Phase,
			Message: "the validation in the bank's app did not come in time"}, nil
	}
	var con api.Connection
	switch s.Phase {
	case api.PhaseDecoupled:
		con, err = p.api.UpdateConnection(ctx, s.Temporary, s.Connection, "", map[string]string{"resume": "true"})
	case api.PhaseValidating:
		con, err = p.api.Connection(ctx, s.Temporary, s.Connection, "sources")
	default:
		return internal("a poll came while nothing was running"), nil
	}
	if err != nil {
		if v := api.ForError(err); v.Temporary && s.Polls < p.o.MaxPolls {
			// A blip while waiting: ask again later rather than fail the login.
			return connection.Outcome{Status: connection.Running, PollAfter: p.o.PollAfter, State: s.Encode()}, nil
		}
		return p.failedAnswering(ctx, s, err), nil
	}
	return p.advance(ctx, l, s, con), nil
}

// advance acts on a connection's state: add the next source, ask for fields, wait, ask which
// accounts to share, or fail.
func (p *Provider) advance(ctx context.Context, l connection.Login, s api.Session, con api.Connection) connection.Outcome {
	for {
		state := con.StateName()
		v := api.ForState(state)
		switch v.Status {
		case api.StatusSucceeded:
			if len(s.Pending) == 0 {
				return p.chooseAccounts(ctx, l, s)
			}
			next := s.Pending[0]
			s.Pending, s.Phase, s.Polls = s.Pending[1:], "", 0
			var err error
			if con, err = p.api.UpdateConnection(ctx, s.Temporary, s.Connection, next, nil); err != nil {
				return p.failed(ctx, s, err)
			}
			continue
		case api.StatusWaitingMFA:
			ch, ok := p.fieldsChallenge(l, s, con.Fields)
			if !ok {
				p.discard(ctx, s)
				return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, UpstreamCode: state,
					Message: "Powens asked for more information without saying which"}
			}
			s.Phase = api.PhaseMFA
			return connection.Outcome{Status: connection.WaitingMFA, UpstreamCode: state, Message: "the bank asks for more information",
				Challenge: ch, State: s.Encode()}
		case api.StatusRunning:
			s.Phase = api.PhaseValidating
			msg := "Powens is validating the connection"
			if state == "decoupled" {
				s.Phase, msg = api.PhaseDecoupled, "waiting for the user to validate in the bank's app"
			}
			return connection.Outcome{Status: connection.Running, UpstreamCode: state, Message: msg, PollAfter: p.o.PollAfter, State: s.Encode()}
		default:
			p.discard(ctx, s)
			return connection.Outcome{Status: connection.Failed, Reason: connection.Reason(v.Reason), UpstreamCode: state, Message: stateMessage(state)}
		}
	}
}

func stateMessage(state string) string {
	switch state {
	case "SCARequired", "webauthRequired":
		return "the bank requires a strong authentication this login cannot give: log in again"
	case "actionNeeded":
		return "the user must act on the bank's website first"
	case "passwordExpired":
		return "the password expired: change it at the bank, then log in again"
	case "wrongpass":
		return "the bank refused the credentials"
	case "rateLimiting", "websiteUnavailable":
		return "the bank is unavailable; try again later"
	}
	return "Powens could not complete the connection"
}

// fieldsChallenge asks for the fields of an additionalInformationNeeded connection.
func (p *Provider) fieldsChallenge(l connection.Login, s api.Session, fields []api.Field) (*connection.Challenge, bool) {
	ch := &connection.Challenge{Round: l.Round, ExpiresAt: p.expiry(s)}
	for _, f := range fields {
		if f.Name == "" {
			continue
		}
		cf := connection.ChallengeField{Name: f.Name, Type: connection.ChallengeText, Label: f.Label}
		if cf.Label == "" {
			cf.Label = f.Name
		}
		switch f.Type {
		case "password":
			cf.Type = connection.ChallengePassword
		case "list":
			cf.Type = connection.ChallengeOptions
			for _, v := range f.Values {
				cf.Options = append(cf.Options, connection.Option{Value: v.Value, Label: v.Label})
			}
		}
		ch.Fields = append(ch.Fields, cf)
	}
	return ch, len(ch.Fields) > 0
}

// expiry is when a challenge ends: ChallengeTTL from now, but before the temporary token dies.
func (p *Provider) expiry(s api.Session) time.Time {
	at := p.o.Now().Add(p.o.ChallengeTTL)
	if !s.TemporaryExpiry.IsZero() {
		if limit := s.TemporaryExpiry.Add(-time.Minute); limit.Before(at) {
			at = limit
		}
	}
	return at.Truncate(time.Millisecond)
}

// Answers to the account challenge.
const (
	Share = "share"
	Skip  = "skip"
)

// AccountField is the challenge field that asks about account id.
func AccountField(id int64) string { return "account_" + strconv.FormatInt(id, 10) }

// chooseAccounts asks the user which of the connection's accounts (all disabled) to share.
func (p *Provider) chooseAccounts(ctx context.Context, l connection.Login, s api.Session) connection.Outcome {
	con, err := p.api.Connection(ctx, s.Temporary, s.Connection, "all_accounts")
	if err != nil {
		return p.failed(ctx, s, err)
	}
	ch := &connection.Challenge{Round: l.Round, ExpiresAt: p.expiry(s), AccountSelection: true}
	s.Offered = nil
	for _, a := range con.AllAccounts {
		if a.IsDeleted() || a.ID <= 0 {
			continue
		}
		s.Offered = append(s.Offered, a.ID)
		ch.Fields = append(ch.Fields, connection.ChallengeField{
			Name: AccountField(a.ID), Type: connection.ChallengeOptions, Label: accountLabel(a),
			Options: []connection.Option{{Value: Share, Label: "Share"}, {Value: Skip, Label: "Don't share"}},
		})
	}
	if len(ch.Fields) == 0 {
		p.discard(ctx, s)
		return connection.Outcome{Status: connection.Failed, Reason: connection.UserActionRequired, UpstreamCode: "noAccount",
			Message: "the bank shows no account for this login"}
	}
	s.Phase = api.PhaseAccounts
	return connection.Outcome{Status: connection.WaitingMFA, UpstreamCode: "accountsDisabled",
		Message: "choose the accounts to share", Challenge: ch, State: s.Encode()}
}

// accountLabel is the account's name and the last four characters of its number.
func accountLabel(a api.Account) string {
	name := a.Name
	if name == "" {
		name = a.OriginalName
	}
	num := ""
	if a.Number != nil {
		num = *a.Number
	} else if a.IBAN != nil {
		num = *a.IBAN
	}
	if r := []rune(num); len(r) >= 4 {
		return name + " ••••" + string(r[len(r)-4:])
	}
	return name
}

// activate enables the accounts the user chose, then turns the temporary token into a
// permanent one: the login succeeds.
func (p *Provider) activate(ctx context.Context, l connection.Login, s api.Session, answers map[string]string) connection.Outcome {
	var chosen []int64
	for _, id := range s.Offered {
		switch answers[AccountField(id)] {
		case Share:
			chosen = append(chosen, id)
		case Skip, "":
		default:
			return internal("an answer that is neither share nor skip")
		}
	}
	if len(chosen) == 0 {
		p.discard(ctx, s)
		return connection.Outcome{Status: connection.Failed, Reason: connection.UserActionRequired, UpstreamCode: "noAccountShared",
			Message: "the user shared no account"}
	}
	for _, id := range chosen {
		if err := p.api.ActivateAccount(ctx, s.Temporary, id); err != nil {
			return p.failedAnswering(ctx, s, err)
		}
	}
	token, err := p.api.Permanent(ctx, s.Temporary)
	if err != nil {
		if e, ok := upstream.AsError(err); ok && e.Op == "POST "+api.PathAccess && e.Status == 401 {
			// Puente's client credentials were refused: a configuration error, not the user's.
			p.discard(ctx, s)
			return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, UpstreamCode: upstreamCode(e.Code),
				Message: "Powens refused Puente's client credentials"}
		}
		return p.failedAnswering(ctx, s, err)
	}
	done := api.Session{User: s.User, Token: token, Connection: s.Connection}
	return connection.Outcome{Status: connection.Succeeded, Message: fmt.Sprintf("%d account(s) shared", len(chosen)), State: done.Encode()}
}

// failedAnswering is failed, where a refused temporary token means the user took too long.
func (p *Provider) failedAnswering(ctx context.Context, s api.Session, err error) connection.Outcome {
	if e, ok := upstream.AsError(err); ok && e.Status == 401 {
		return connection.Outcome{Status: connection.Failed, Reason: connection.MFATimeout, UpstreamCode: upstreamCode(e.Code),
			Message: "the login's temporary access to Powens expired"}
	}
	return p.failed(ctx, s, err)
}

// failed ends a login on a failed call, deleting the temporary user and what it holds, so
// that nothing is left half-made upstream.
func (p *Provider) failed(ctx context.Context, s api.Session, err error) connection.Outcome {
	p.discard(ctx, s)
	v := api.ForError(err)
	out := connection.Outcome{Status: connection.Failed, Reason: connection.Reason(v.Reason)}
	if e, ok := upstream.AsError(err); ok {
		out.UpstreamCode = upstreamCode(e.Code)
		if out.UpstreamCode == "" {
			out.UpstreamCode = string(e.Kind)
		}
	}
	switch out.Reason {
	case connection.InvalidCredentials:
		out.Message = "the bank refused the credentials"
	case connection.InstitutionUnavailable:
		out.Message = "Powens or the bank is unavailable; try again later"
	default:
		out.Message = "the connection could not be made at Powens"
	}
	return out
}

// discard deletes the login's temporary user (and its connection), best effort.
func (p *Provider) discard(ctx context.Context, s api.Session) {
	if s.Temporary == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = p.api.DeleteUser(ctx, s.Temporary)
}

// Revoke deletes the connection at Powens, and the user made for it.
func (p *Provider) Revoke(ctx context.Context, l connection.Login) error {
	s, err := api.ParseSession(l.State)
	if err != nil {
		return nil // the login never got as far as Powens
	}
	token := s.UserToken()
	if token == "" {
		return nil
	}
	if s.Connection != 0 {
		if err := p.api.DeleteConnection(ctx, token, s.Connection); err != nil {
			if e, ok := upstream.AsError(err); !ok || e.Status != 401 {
				return err
			}
		}
	}
	return p.api.DeleteUser(ctx, token)
}

func internal(msg string) connection.Outcome {
	return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: msg}
}

// upstreamCode keeps a code Powens sent when it looks like one (it is shown to integrators).
var codeRE = regexp.MustCompile(`^[A-Za-z_]{1,40}$`)

func upstreamCode(c string) string {
	if codeRE.MatchString(c) {
		return c
	}
	return ""
}
