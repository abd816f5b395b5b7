// Package guiabolso is the connection side of Guiabolso Connect: one REDIRECT institution whose
// login is Guiabolso's hosted Connect page. The user shares their banks there and comes back to
// Puente's callback with an authorization code, which is exchanged for the user's tokens.
package guiabolso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	gb "puente.dev/pkg/upstream/guiabolso"
	"puente.dev/services/connection"
)

// InstitutionID is the one institution's external id.
const InstitutionID = "guiabolso-connect"

// Provider implements connection.Provider.
type Provider struct {
	client *gb.Client
}

// New returns the provider over client.
func New(client *gb.Client) *Provider { return &Provider{client: client} }

func (p *Provider) Name() string { return gb.Name }

func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	return []connection.Institution{{
		Provider: gb.Name, ExternalID: InstitutionID, OrganizationID: "guiabolso", OrganizationName: "Guiabolso",
		Name: "Guiabolso Connect", Country: "BR", Personal: true,
		Products: []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS"},
		Auth:     connection.Redirect, Sources: []string{"guiabolso-connect"}, Health: connection.Operational,
	}}, nil
}

var errNotCredentials = errors.New("guiabolso: Guiabolso Connect is a REDIRECT institution")

func (p *Provider) Start(context.Context, connection.Login) (connection.Outcome, error) {
	return connection.Outcome{}, errNotCredentials
}

func (p *Provider) Answer(context.Context, connection.Login, map[string]string) (connection.Outcome, error) {
	return connection.Outcome{}, errNotCredentials
}

func (p *Provider) Poll(context.Context, connection.Login) (connection.Outcome, error) {
	return connection.Outcome{}, errNotCredentials
}

// Authorize sends the user to the Connect page, naming the user by gb.UserTrackingID.
func (p *Provider) Authorize(ctx context.Context, l connection.Login, state, callbackURL string) (connection.Redirection, error) {
	cfg := p.client.Config()
	page, err := url.Parse(cfg.ConnectPage())
	if err != nil {
		return connection.Redirection{}, fmt.Errorf("guiabolso: connect page: %w", err)
	}
	back, err := url.Parse(callbackURL)
	if err != nil {
		return connection.Redirection{}, fmt.Errorf("guiabolso: callback URL: %w", err)
	}
	bq := back.Query()
	bq.Set("state", state)
	back.RawQuery = bq.Encode()
	fallback := *back
	fq := fallback.Query()
	fq.Set("error", "user_cancel")
	fallback.RawQuery = fq.Encode()

	q := page.Query()
	q.Set("clientId", cfg.ClientID)
	q.Set("userTrackingId", gb.UserTrackingID(l.ConnectionID))
	q.Set("callbackURL", back.String())
	q.Set("fallbackURL", fallback.String())
	page.RawQuery = q.Encode()
	st, err := json.Marshal(gb.LinkState{UserTrackingID: gb.UserTrackingID(l.ConnectionID)})
	if err != nil {
		return connection.Redirection{}, err
	}
	return connection.Redirection{URL: page.String(), State: st}, nil
}

// Callback exchanges the code the Connect page sent back for the user's tokens.
func (p *Provider) Callback(ctx context.Context, l connection.Login, params map[string]string) (connection.Outcome, error) {
	var st gb.LinkState
	if len(l.State) > 0 {
		if err := json.Unmarshal(l.State, &st); err != nil {
			return connection.Outcome{}, fmt.Errorf("guiabolso: decode login state: %w", err)
		}
	}
	if st.UserTrackingID == "" {
		st.UserTrackingID = gb.UserTrackingID(l.ConnectionID)
	}
	var code string
	for _, k := range gb.CallbackCodeParams {
		if code = params[k]; code != "" {
			break
		}
	}
	if code == "" {
		upstreamErr := params["error"]
		if upstreamErr == "" {
			upstreamErr = "no_code"
		}
		return connection.Outcome{Status: connection.Failed, Reason: connection.RedirectDenied, UpstreamCode: upstreamErr,
			Message: "the user left Guiabolso Connect without sharing their data"}, nil
	}
	linked, err := p.client.ExchangeCode(ctx, st.UserTrackingID, code)
	if err != nil {
		reason, upstreamCode, msg, retry := gb.LoginFailure(err)
		if retry {
			return connection.Outcome{}, err
		}
		return connection.Outcome{Status: connection.Failed, Reason: connection.Reason(reason), UpstreamCode: upstreamCode, Message: msg}, nil
	}
	raw, err := json.Marshal(linked)
	if err != nil {
		return connection.Outcome{}, err
	}
	return connection.Outcome{Status: connection.Succeeded, Message: "the user shared their banks on Guiabolso Connect", State: raw}, nil
}
