// Package boufin is the connection side of Boufin Connect (Chile): its entities are REDIRECT
// institutions that ask for the user's RUT (and a company's, for a legal person); Authorize asks
// Boufin for a Token OTP and the consent it opens, and sends the user to the Connect app; the
// callback checks the consent upstream with a Task Token. Revoke ends the consent upstream.
package boufin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"puente.dev/pkg/upstream"
	bf "puente.dev/pkg/upstream/boufin"
	"puente.dev/services/connection"
)

// Name is the provider's id.
const Name = bf.Name

// Field names of a Boufin institution.
const (
	FieldRUT        = "rut"
	FieldCompanyRUT = "company_rut"
)

// RUTPattern is a Chilean RUT, dots optional.
const RUTPattern = `^[0-9]{1,2}\.?[0-9]{3}\.?[0-9]{3}-[0-9kK]$`

// pendingPolls is how many times a consent still PENDING after the user came back is checked
// again before the login gives up.
const (
	pendingPolls = 10
	pollAfter    = 2 * time.Second
)

// Provider implements connection.Provider and connection.Revoker.
type Provider struct {
	c *bf.Client
}

var (
	_ connection.Provider = (*Provider)(nil)
	_ connection.Revoker  = (*Provider)(nil)
)

// New returns the provider over a Boufin client.
func New(c *bf.Client) *Provider { return &Provider{c: c} }

func (p *Provider) Name() string { return Name }

// State is what the connection keeps of a Boufin login (sealed), and what the extraction side
// reads to pull products.
type State struct {
	ConsentID  string `json:"consentId"`
	Target     string `json:"target"`
	PersonType string `json:"personType"`
	Polls      int    `json:"polls,omitempty"`
}

// ParseState reads a login's state.
func ParseState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("boufin: decode login state: %w", err)
	}
	if s.ConsentID == "" || s.Target == "" {
		return State{}, errors.New("boufin: login state without consent")
	}
	return s, nil
}

func (s State) encode() []byte {
	b, _ := json.Marshal(s) // strings and an int always encode
	return b
}

var healths = map[string]connection.Health{
	"operational": connection.Operational, "degraded": connection.Degraded, "down": connection.Down,
}

// Institutions implements connection.Provider.
func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	ents, err := p.c.Entities(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]connection.Institution, 0, len(ents))
	for _, e := range ents {
		in := connection.Institution{
			Provider: Name, ExternalID: e.EntityID, Name: e.Name, OrganizationID: e.EntityID, OrganizationName: e.Name,
			Country: "CL", Auth: connection.Redirect, LogoURL: e.LogoURL, Health: connection.Operational,
			Fields: []connection.CredentialField{
				{Name: FieldRUT, Type: connection.Text, Label: "RUT", Description: "RUT de la persona que autoriza (12.345.678-9)",
					Required: true, IsUsername: true, Validation: RUTPattern},
				{Name: FieldCompanyRUT, Type: connection.Text, Label: "RUT empresa",
					Description: "Solo personas jurídicas: RUT de la empresa", Validation: RUTPattern},
			},
		}
		if h, ok := healths[strings.ToLower(e.Status)]; ok {
			in.Health = h
		}
		for _, pt := range e.PersonTypes {
			switch pt {
			case bf.PersonNatural:
				in.Personal = true
			case bf.PersonLegal:
				in.Business = true
			}
		}
		if !in.Personal && !in.Business {
			in.Personal = true
		}
		in.Products = products(p.c.Config(), e.Products)
		out = append(out, in)
	}
	return out, nil
}

// products are the Puente products an entity's Boufin products cover.
func products(cfg bf.Config, upstreamProducts []string) []string {
	var out []string
	has := func(p string) bool {
		for _, u := range upstreamProducts {
			if u == p {
				return true
			}
		}
		return len(upstreamProducts) == 0
	}
	if has(cfg.ProductAccounts) {
		out = append(out, "ACCOUNTS", "BALANCES")
	}
	if has(cfg.ProductTransactions) {
		out = append(out, "TRANSACTIONS", "REPORTS")
	}
	if has(cfg.ProductIdentity) {
		out = append(out, "IDENTITY")
	}
	return out
}

var errNoLogin = errors.New("boufin logs in through its Connect app (a REDIRECT institution)")

// Start, Answer: Boufin institutions are REDIRECT ones.
func (p *Provider) Start(context.Context, connection.Login) (connection.Outcome, error) {
	return connection.Outcome{}, errNoLogin
}

func (p *Provider) Answer(context.Context, connection.Login, map[string]string) (connection.Outcome, error) {
	return connection.Outcome{}, errNoLogin
}

// Authorize asks Boufin for a Token OTP (and the consent it opens) for the person the fields
// name, and sends the user to the Connect app with it.
func (p *Provider) Authorize(ctx context.Context, l connection.Login, state, callbackURL string) (connection.Redirection, error) {
	rut, company := l.Credentials[FieldRUT], strings.TrimSpace(l.Credentials[FieldCompanyRUT])
	if strings.TrimSpace(rut) == "" {
		return connection.Redirection{}, errors.New("boufin: no rut")
	}
	personType := bf.PersonNatural
	if company != "" {
		personType = bf.PersonLegal
	}
	otp, err := p.c.TokenOTP(ctx, personType, rut, company)
	if err != nil {
		return connection.Redirection{}, err
	}
	st := State{ConsentID: otp.ConsentID, Target: bf.Target(personType, rut, company), PersonType: personType}
	return connection.Redirection{URL: p.c.AppURL(otp.Token, callbackURL, state), State: st.encode()}, nil
}

// Callback checks what the Connect app sent back against the consent upstream.
func (p *Provider) Callback(ctx context.Context, l connection.Login, params map[string]string) (connection.Outcome, error) {
	st, err := ParseState(l.State)
	if err != nil {
		return failed(connection.Internal, "", "the login's state is unreadable"), nil
	}
	back := params[bf.CallbackParamConsentID]
	if back != "" && back != st.ConsentID {
		return failed(connection.Internal, "", "the Connect app returned another consent than the one requested"), nil
	}
	appErr := params[bf.CallbackParamError]
	if appErr == "" && back == "" {
		return failed(connection.RedirectDenied, "", "the Connect app returned no consent"), nil
	}
	return p.check(ctx, st, appErr)
}

// Poll checks again a consent that was still PENDING when the user came back.
func (p *Provider) Poll(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	st, err := ParseState(l.State)
	if err != nil {
		return failed(connection.Internal, "", "the login's state is unreadable"), nil
	}
	return p.check(ctx, st, "")
}

// check reads the consent upstream, the truth of the login; appErr is the error the Connect app
// sent back, which decides only while the consent says nothing yet.
func (p *Provider) check(ctx context.Context, st State, appErr string) (connection.Outcome, error) {
	c, err := p.c.Consent(ctx, st.Target, st.ConsentID)
	if ue, ok := upstream.AsError(err); ok && ue.Kind == upstream.Rejected && ue.Status == 404 {
		return failed(connection.LoginRequired, ue.Code, "Boufin does not know the consent"), nil
	}
	if err != nil {
		return connection.Outcome{}, err
	}
	v := bf.ConsentVerdict(c)
	code := c.Status
	if c.ErrorCode != "" {
		code = c.ErrorCode
	}
	if v.Status == bf.StatusRunning && appErr != "" {
		av, ok := bf.AppErrorVerdict(appErr)
		if !ok {
			av = bf.Verdict{Status: bf.StatusFailed, Reason: bf.ReasonInstitutionUnavailable}
		}
		return outcome(av, appErr, st), nil
	}
	if v.Status == bf.StatusRunning {
		if st.Polls >= pendingPolls {
			return failed(connection.InstitutionUnavailable, code, "the consent was never authorised"), nil
		}
		st.Polls++
		return connection.Outcome{Status: connection.Running, UpstreamCode: code, PollAfter: pollAfter, State: st.encode(),
			Message: "waiting for Boufin to authorise the consent"}, nil
	}
	return outcome(v, code, st), nil
}

func outcome(v bf.Verdict, code string, st State) connection.Outcome {
	st.Polls = 0
	if v.Status == bf.StatusSucceeded {
		return connection.Outcome{Status: connection.Succeeded, UpstreamCode: code, State: st.encode(), Message: "consent authorised"}
	}
	o := failed(connection.Reason(v.Reason), code, "Boufin did not authorise the consent")
	o.State = st.encode()
	return o
}

func failed(r connection.Reason, code, msg string) connection.Outcome {
	return connection.Outcome{Status: connection.Failed, Reason: r, UpstreamCode: code, Message: msg}
}

// Revoke ends the consent upstream (connection.Revoker); a consent Boufin no longer knows is
// already gone.
func (p *Provider) Revoke(ctx context.Context, l connection.Login) error {
	if len(l.State) == 0 {
		return nil // Authorize never got a consent
	}
	st, err := ParseState(l.State)
	if err != nil {
		return err
	}
	return p.c.RevokeConsent(ctx, st.Target, st.ConsentID)
}
