// Package klavi is the connection side of Klavi Link (Brazilian Open Finance): its participants
// as REDIRECT institutions, the consent each login creates and the bank journey the user is sent
// on, the consent's status (polled, and hinted by Klavi's event webhooks), and revocation when a
// connection is deleted.
package klavi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/upstream"
	wire "puente.dev/pkg/upstream/klavi"
	"puente.dev/services/connection"
)

// Name is the provider id.
const Name = wire.Name

// The fields a Klavi institution asks for before the redirect: the user's CPF, and a company's
// CNPJ when a business links.
const (
	FieldCPF  = "cpf"
	FieldCNPJ = "cnpj"
)

// Provider implements connection.Provider, EventRouter and Revoker.
type Provider struct {
	c         *wire.Client
	pollAfter time.Duration
}

// New returns the adapter over c; pollAfter is how long a consent waiting for the user rests
// between polls.
func New(c *wire.Client, pollAfter time.Duration) *Provider {
	if pollAfter <= 0 {
		pollAfter = 10 * time.Second
	}
	return &Provider{c: c, pollAfter: pollAfter}
}

func (p *Provider) Name() string { return Name }

// State is what the connection keeps of a Klavi login (sealed) and what the extraction adapter
// reads from the link.
type State struct {
	LinkID    string `json:"linkId"`
	ConsentID string `json:"consentId"`
	Business  bool   `json:"business"`
	// TaxID is whose reports are asked for: the CNPJ of a business, the CPF of a person.
	TaxID string `json:"taxId"`
}

var fields = []connection.CredentialField{
	{Name: FieldCPF, Type: connection.Text, Label: "CPF", Description: "the account holder's CPF, 11 digits", Required: true, IsUsername: true, Validation: `^[0-9]{11}$`},
	{Name: FieldCNPJ, Type: connection.Text, Label: "CNPJ", Description: "the company's CNPJ, 14 digits, when a business links", Validation: `^[0-9]{14}$`},
}

// Institutions lists Klavi's participants, through a catalog link made for the purpose (a link
// without a tax id only reads the list).
func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	l, err := p.c.CreateLink(ctx, wire.LinkRequest{})
	if err != nil {
		return nil, fmt.Errorf("klavi catalog link: %w", err)
	}
	list, err := p.c.Institutions(ctx, l.LinkToken)
	if err != nil {
		return nil, fmt.Errorf("klavi participants: %w", err)
	}
	out := make([]connection.Institution, 0, len(list))
	for _, in := range list {
		bt := strings.ToUpper(in.BusinessType)
		i := connection.Institution{
			Provider: Name, ExternalID: in.InstitutionCode, Name: in.Name, Country: "BR",
			OrganizationID: in.OrganizationID, OrganizationName: in.OrganizationName,
			Personal: bt == "BOTH" || bt == "NATURAL" || bt == "", Business: bt == "BOTH" || bt == "LEGAL",
			Products: products(in.AvailableResources), Auth: connection.Redirect, Fields: fields, LogoURL: in.Avatar,
			Health: connection.Operational,
		}
		if in.IsOutage {
			i.Health = connection.Down
		}
		out = append(out, i)
	}
	return out, nil
}

// products are the Puente products a participant's resources allow.
func products(resources []string) []string {
	var out []string
	has := func(r string) bool {
		for _, x := range resources {
			if strings.EqualFold(x, r) {
				return true
			}
		}
		return false
	}
	if has("ACCOUNTS") {
		out = append(out, "ACCOUNTS", "BALANCES", "TRANSACTIONS")
	}
	if has("REGISTRATION") {
		out = append(out, "IDENTITY")
	}
	return out
}

var errNoCredentials = errors.New("klavi: institutions are REDIRECT, there is no credentials login")

func (p *Provider) Start(context.Context, connection.Login) (connection.Outcome, error) {
	return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: errNoCredentials.Error()}, nil
}

func (p *Provider) Answer(context.Context, connection.Login, map[string]string) (connection.Outcome, error) {
	return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: errNoCredentials.Error()}, nil
}

// Authorize creates a link for the user's tax ids and a consent at the institution, whose
// externalTrackId is the connection id, and returns the bank journey's URL.
func (p *Provider) Authorize(ctx context.Context, l connection.Login, state, callbackURL string) (connection.Redirection, error) {
	cpf, cnpj := l.Credentials[FieldCPF], l.Credentials[FieldCNPJ]
	if cpf == "" {
		return connection.Redirection{}, apierr.Invalid("credentials.cpf", "is required")
	}
	back, err := url.Parse(callbackURL)
	if err != nil {
		return connection.Redirection{}, fmt.Errorf("klavi: callback URL: %w", err)
	}
	q := back.Query()
	q.Set("state", state)
	back.RawQuery = q.Encode()

	link, err := p.c.CreateLink(ctx, wire.LinkRequest{PersonalTaxID: cpf, BusinessTaxID: cnpj})
	if err != nil {
		return connection.Redirection{}, public(err)
	}
	created, err := p.c.CreateConsent(ctx, link.LinkToken, wire.ConsentRequest{
		ExternalTrackID: l.ConnectionID, PersonalTaxID: cpf, BusinessTaxID: cnpj, InstitutionCode: l.Institution.ExternalID,
		RedirectURL: back.String(), ValidityPeriod: wire.ValidityPeriod,
	})
	if err != nil {
		return connection.Redirection{}, public(err)
	}
	tax := cpf
	if cnpj != "" {
		tax = cnpj
	}
	st, _ := json.Marshal(State{LinkID: link.LinkID, ConsentID: created.ConsentID, Business: cnpj != "", TaxID: tax})
	return connection.Redirection{URL: created.ConsentRedirectURL, State: st}, nil
}

// public turns an upstream failure while starting a redirect into an error the caller may see.
func public(err error) error {
	e, ok := upstream.AsError(err)
	if !ok {
		return err
	}
	if b, ok := wire.BusinessErrors[e.Code]; ok && e.Code == "4004" {
		return apierr.New(apierr.Unavailable, "INSTITUTION_UNAVAILABLE", "Klavi: "+b.Message)
	}
	switch e.Kind {
	case upstream.Rejected:
		return apierr.New(apierr.FailedPrecondition, string(e.Kind), "Klavi refused to start the consent")
	case upstream.RateLimited:
		return apierr.New(apierr.ResourceExhausted, string(e.Kind), "Klavi is rate limiting: try again shortly")
	}
	return apierr.New(apierr.Unavailable, string(e.Kind), "Klavi could not start the consent: "+strings.ToLower(strings.ReplaceAll(string(e.Kind), "_", " ")))
}

func state(l connection.Login) (State, error) {
	var s State
	if err := json.Unmarshal(l.State, &s); err != nil || s.ConsentID == "" {
		return State{}, errors.New("klavi: the login has no consent")
	}
	return s, nil
}

// Callback reads where the bank journey ended: an error is a denial; otherwise the consent's
// status is polled (Klavi's consent_authorised event makes that poll happen at once).
func (p *Provider) Callback(ctx context.Context, l connection.Login, params map[string]string) (connection.Outcome, error) {
	s, err := state(l)
	if err != nil {
		return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: err.Error()}, nil
	}
	if code := params["error"]; code != "" {
		return connection.Outcome{Status: connection.Failed, Reason: connection.RedirectDenied, UpstreamCode: clip(code),
			Message: "the user did not authorise the consent at the institution"}, nil
	}
	if id := params["consent_id"]; id != "" && id != s.ConsentID {
		return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: "Klavi returned another consent"}, nil
	}
	// Klavi's webhook that the consent is authorised often comes before the user does, when it
	// has nothing to wake: read the consent's status now rather than at the next poll.
	return p.Poll(ctx, l)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// Poll reads the consent's status.
func (p *Provider) Poll(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	s, err := state(l)
	if err != nil {
		return connection.Outcome{Status: connection.Failed, Reason: connection.Internal, Message: err.Error()}, nil
	}
	c, err := p.c.Consent(ctx, s.ConsentID)
	if err != nil {
		if e, ok := upstream.AsError(err); ok && e.Status == 404 {
			return connection.Outcome{Status: connection.Failed, Reason: connection.LoginRequired, UpstreamCode: "404", Message: "Klavi no longer knows the consent"}, nil
		}
		return connection.Outcome{}, err
	}
	return outcome(c.Status, p.pollAfter), nil
}

// outcome maps a consent status to a login outcome.
func outcome(status string, pollAfter time.Duration) connection.Outcome {
	code := wire.NormStatus(status)
	ls, ok := wire.ConsentLoginState(status)
	if !ok {
		// An undocumented status: keep waiting, the journey times out if it never settles.
		return connection.Outcome{Status: connection.Running, PollAfter: pollAfter, UpstreamCode: clip(code)}
	}
	out := connection.Outcome{Status: connection.Status(ls.Status), Reason: connection.Reason(ls.Reason), UpstreamCode: code}
	switch out.Status {
	case connection.Running:
		out.PollAfter = pollAfter
	case connection.Succeeded:
		out.Message = "the consent is authorised"
	case connection.Failed:
		out.Message = "the consent ended " + code
	}
	return out
}

// ConnectionsFor returns the connections Klavi's consent_* events name: the externalTrackId of
// each consent is the connection id Puente gave it. Reports concern no login.
func (p *Provider) ConnectionsFor(_ context.Context, _ string, body []byte) ([]string, error) {
	if wire.IsReport(body) {
		return nil, nil
	}
	events, err := wire.ParseEvents(body)
	if err != nil {
		return nil, fmt.Errorf("klavi: event webhook body: %w", err)
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range events {
		if !strings.HasPrefix(e.EventName, "consent_") || e.Payload.Consents == nil {
			continue
		}
		if id := e.Payload.Consents.ExternalTrackID; id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// Revoke revokes the login's consent at Klavi.
func (p *Provider) Revoke(ctx context.Context, l connection.Login) error {
	s, err := state(l)
	if err != nil {
		return nil // the login never got a consent: nothing to end upstream
	}
	return p.c.RevokeConsent(ctx, s.ConsentID)
}

var (
	_ connection.Provider    = (*Provider)(nil)
	_ connection.EventRouter = (*Provider)(nil)
	_ connection.Revoker     = (*Provider)(nil)
)
