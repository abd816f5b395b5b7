package connection

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/metrics"
	"puente.dev/pkg/secretbox"
)

// Users checks that a user exists and belongs to the calling client (the authtoken service).
type Users interface {
	Check(ctx context.Context, userID string) error
	// RedirectURIs are the redirect URIs the client registered.
	RedirectURIs(ctx context.Context, clientID string) ([]string, error)
}

// Service is the connection logic over a Store and the providers.
type Service struct {
	store        Store
	providers    map[string]Provider
	box          *secretbox.Box
	hashKey      []byte
	callback     string
	widgetReturn string
	minPoll      time.Duration
	users        Users
	consents     Consents
	log          *slog.Logger
	metrics      *metrics.Metrics
	now          func() time.Time
	// institutions caches the catalog by id (it changes only when SyncCatalogs runs), so that a
	// job holding a connection's row lock needs no second database connection.
	institutions sync.Map
	patterns     sync.Map // field validation → *regexp.Regexp
}

// WidgetReturnPath is the Connect widget's own return page under the public URL: a redirect URI
// every client may use, since it only tells the user to close the window.
const WidgetReturnPath = "/connect/return"

// RedirectTimeout is how long a connection waits for its user to come back from a redirect.
const RedirectTimeout = 30 * time.Minute

// NewService checks cfg and returns the service.
func NewService(store Store, providers []Provider, users Users, consents Consents, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connection config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("connection config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	hashKey, _ := base64.StdEncoding.DecodeString(cfg.HashKey)
	s := &Service{
		store: store, providers: map[string]Provider{}, box: box, hashKey: hashKey,
		callback:     strings.TrimRight(cfg.PublicURL, "/") + "/v1/connections:callback",
		widgetReturn: strings.TrimRight(cfg.PublicURL, "/") + WidgetReturnPath,
		minPoll:      cfg.MinPollInterval,
		users:        users, consents: consents, log: log, metrics: cfg.Metrics, now: time.Now,
	}
	for _, p := range providers {
		s.providers[p.Name()] = p
	}
	return s, nil
}

func (s *Service) hash(secret string) []byte {
	m := hmac.New(sha256.New, s.hashKey)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// SetClock replaces the clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SyncCatalogs refreshes every provider's institutions.
func (s *Service) SyncCatalogs(ctx context.Context) error {
	names := make([]string, 0, len(s.providers))
	for name := range s.providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ins, err := s.providers[name].Institutions(ctx)
		if err != nil {
			return fmt.Errorf("catalog of %s: %w", name, err)
		}
		s.dropBadValidations(ctx, name, ins)
		if err := s.store.SyncInstitutions(ctx, name, ins); err != nil {
			return fmt.Errorf("catalog of %s: %w", name, err)
		}
	}
	s.institutions.Clear()
	return nil
}

func (s *Service) institution(ctx context.Context, id string) (Institution, error) {
	if in, ok := s.institutions.Load(id); ok {
		return in.(Institution), nil
	}
	in, err := s.store.GetInstitution(ctx, id)
	if err != nil {
		return Institution{}, err
	}
	s.institutions.Store(id, in)
	return in, nil
}

// ---- catalog

// ListInstitutions lists the catalog; a widget session sees its country and products only.
func (s *Service) ListInstitutions(ctx context.Context, p caller.Principal, f InstitutionFilter, page Page) ([]Institution, error) {
	if p.Kind == apiv1.Principal_PRINCIPAL_WIDGET {
		if f.Country != "" && f.Country != p.Country {
			return nil, nil
		}
		f.Country, f.Products = p.Country, p.Products
	}
	ins, err := s.store.ListInstitutions(ctx, f, page)
	if err != nil {
		return nil, err
	}
	return s.withObservedHealth(ctx, ins)
}

// GetInstitution returns one institution; outside a widget session's country or products it is
// not found.
func (s *Service) GetInstitution(ctx context.Context, p caller.Principal, id string) (Institution, error) {
	in, err := s.institution(ctx, id)
	if err != nil {
		return Institution{}, err
	}
	if !widgetMaySee(p, in) {
		return Institution{}, ErrInstitutionNotFound
	}
	// The cached row holds the provider's health; the observed one is read fresh.
	ins, err := s.withObservedHealth(ctx, []Institution{in})
	if err != nil {
		return Institution{}, err
	}
	return ins[0], nil
}

func widgetMaySee(p caller.Principal, in Institution) bool {
	if p.Kind != apiv1.Principal_PRINCIPAL_WIDGET {
		return true
	}
	if in.Country != p.Country {
		return false
	}
	for _, prod := range p.Products {
		if slices.Contains(in.Products, prod) {
			return true
		}
	}
	return false
}

// ---- connections

// NewConnection is what CreateConnection takes.
type NewConnection struct {
	UserID        string
	InstitutionID string
	Credentials   map[string]string
	ConsentID     string
	RedirectURI   string
}

// CreateConnection checks the credentials against the institution's fields, seals them, and
// queues the login.
func (s *Service) CreateConnection(ctx context.Context, p caller.Principal, n NewConnection) (Connection, []Step, error) {
	if p.Kind == apiv1.Principal_PRINCIPAL_WIDGET {
		if n.UserID != "" && n.UserID != p.UserID {
			return Connection{}, nil, apierr.Invalid("user_id", "a widget session connects its own user only")
		}
		n.UserID = p.UserID
		if n.ConsentID == "" {
			// The link token carried a consent created up front: this connection completes it.
			n.ConsentID = p.ConsentID
		}
	} else {
		if n.UserID == "" {
			return Connection{}, nil, apierr.Invalid("user_id", "is required")
		}
		if err := s.users.Check(ctx, n.UserID); err != nil {
			return Connection{}, nil, err
		}
	}
	in, err := s.GetInstitution(ctx, p, n.InstitutionID)
	if err != nil {
		return Connection{}, nil, err
	}
	if _, ok := s.providers[in.Provider]; !ok {
		return Connection{}, nil, apierr.New(apierr.FailedPrecondition, "PROVIDER_DISABLED", "this institution's provider is not enabled")
	}
	if n.RedirectURI != "" && n.RedirectURI != s.widgetReturn {
		registered, err := s.users.RedirectURIs(ctx, p.ClientID)
		if err != nil {
			return Connection{}, nil, err
		}
		if !slices.Contains(registered, n.RedirectURI) {
			return Connection{}, nil, apierr.Invalid("redirect_uri", "is not one of the client's registered redirect URIs")
		}
	}
	if n.ConsentID != "" {
		if err := s.consents.Check(ctx, n.ConsentID, n.UserID, in.ID); err != nil {
			return Connection{}, nil, err
		}
	}
	now := s.now().UTC()
	c := Connection{
		ID: ids.New("con"), ClientID: p.ClientID, UserID: n.UserID, InstitutionID: in.ID, Provider: in.Provider,
		ConsentID: n.ConsentID, RedirectURI: n.RedirectURI, Status: Pending, CreatedAt: now, UpdatedAt: now,
	}
	if in.Auth == Redirect {
		// A redirect institution may ask for a few fields first (a tax id, a Powens webauth
		// field); most ask for none.
		if len(in.Fields) == 0 && len(n.Credentials) > 0 {
			return Connection{}, nil, apierr.Invalid("credentials", "a redirect institution takes no credentials")
		}
		if err := checkCredentials(in.Fields, n.Credentials, s.compiled); err != nil {
			return Connection{}, nil, err
		}
		var sec Secrets
		var err error
		if len(n.Credentials) > 0 {
			if sec.Credentials, err = s.sealCredentials(c.ID, n.Credentials); err != nil {
				return Connection{}, nil, err
			}
		}
		if c.AuthorizationURL, sec.RedirectState, sec.ProviderState, err = s.startRedirect(ctx, c, in, n.Credentials); err != nil {
			return Connection{}, nil, err
		}
		c.Status = WaitingRedirect
		step := Step{Status: WaitingRedirect, Message: "waiting for the user at the institution", At: now}
		if err := s.store.CreateConnection(ctx, c, sec, step, Job{Kind: JobRedirectTimeout, RunAt: now.Add(RedirectTimeout), MaxAttempts: jobs.DefaultMaxAttempts}); err != nil {
			return Connection{}, nil, fmt.Errorf("create connection: %w", err)
		}
		return c, []Step{step}, nil
	}
	if err := checkCredentials(in.Fields, n.Credentials, s.compiled); err != nil {
		return Connection{}, nil, err
	}
	c.UsernameHint = usernameHint(in.Fields, n.Credentials)
	sealed, err := s.sealCredentials(c.ID, n.Credentials)
	if err != nil {
		return Connection{}, nil, err
	}
	step := Step{Status: Pending, Message: "connection created", At: now}
	if err := s.store.CreateConnection(ctx, c, Secrets{Credentials: sealed}, step, Job{Kind: JobLogin}); err != nil {
		return Connection{}, nil, fmt.Errorf("create connection: %w", err)
	}
	return c, []Step{step}, nil
}

// startRedirect makes a single-use state for a redirect and asks the provider where to send the
// user. Only the state's keyed hash is kept.
func (s *Service) startRedirect(ctx context.Context, c Connection, in Institution, creds map[string]string) (authURL string, stateHash, sealedState []byte, err error) {
	b := make([]byte, 32)
	rand.Read(b)
	state := "pst_" + base64.RawURLEncoding.EncodeToString(b)
	r, err := s.providers[in.Provider].Authorize(ctx, Login{ConnectionID: c.ID, ClientID: c.ClientID, UserID: c.UserID, Institution: in, Credentials: creds}, state, s.callback)
	if err != nil {
		return "", nil, nil, fmt.Errorf("authorize at %s: %w", in.Provider, err)
	}
	if r.URL == "" {
		return "", nil, nil, fmt.Errorf("authorize at %s: no authorization URL", in.Provider)
	}
	if r.State != nil {
		sealedState = s.box.Seal(r.State, []byte("state:"+c.ID))
	}
	return r.URL, s.hash(state), sealedState, nil
}

// CompleteRedirect spends a redirect's state and queues the rest of the login.
func (s *Service) CompleteRedirect(ctx context.Context, state string, params map[string]string) (Connection, error) {
	hash := s.hash(state)
	clientID, id, err := s.store.ConnectionByRedirectState(ctx, hash)
	if err != nil {
		return Connection{}, err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return Connection{}, err
	}
	now := s.now().UTC()
	return s.update(ctx, clientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != WaitingRedirect || !hmac.Equal(sec.RedirectState, hash) {
			return Change{}, ErrRedirectState
		}
		sec.RedirectState = nil // single use
		sec.Answers = s.box.Seal(raw, []byte("answers:"+c.ID))
		c.Status, c.AuthorizationURL, c.UpdatedAt = Running, "", now
		return Change{Step: &Step{Status: Running, Message: "the user came back from the institution", At: now}, Jobs: []Job{{Kind: JobCallback}}}, nil
	})
}

// ReturnURL is where the user's browser goes after CompleteRedirect: the connection's redirect
// URI with connection_id (and the institution's error, when it sent one) added to its query;
// empty when the connection has no redirect URI.
func ReturnURL(c Connection, upstreamError string) string {
	if c.RedirectURI == "" {
		return ""
	}
	u, err := url.Parse(c.RedirectURI)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("connection_id", c.ID)
	if upstreamError != "" {
		q.Set("error", upstreamError)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ---- sandbox controls

var errNotSucceeded = apierr.New(apierr.FailedPrecondition, "NOT_SUCCEEDED", "only a SUCCEEDED connection can be asked to log in again")

// RequireLogin fails a SUCCEEDED connection with LOGIN_REQUIRED, as a bank that wants the user
// to log in again would (sandbox only; the access rule says so).
func (s *Service) RequireLogin(ctx context.Context, p caller.Principal, id string) (Connection, error) {
	if p.ClientID == "" {
		return Connection{}, ErrConnectionNotFound // "" would mean any client to the store
	}
	now := s.now().UTC()
	return s.update(ctx, p.ClientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != Succeeded {
			return Change{}, errNotSucceeded
		}
		c.Status, c.Reason, c.UpstreamCode, c.UpdatedAt = Failed, LoginRequired, "SANDBOX_LOGIN_REQUIRED", now
		return Change{Step: &Step{Status: Failed, Reason: LoginRequired, UpstreamCode: c.UpstreamCode, Message: "sandbox: the institution asks the user to log in again", At: now}}, nil
	})
}

var errNotSimulated = apierr.New(apierr.FailedPrecondition, "NOT_SIMULATED", "the connection's institution is not simulated: only sandbox institutions move in time")

// AdvanceDays moves a SUCCEEDED sandbox connection's bank forward by days (sandbox only; the
// access rule says so) and returns the bank's new date.
func (s *Service) AdvanceDays(ctx context.Context, p caller.Principal, id string, days int) (string, error) {
	if p.ClientID == "" {
		return "", ErrConnectionNotFound // "" would mean any client to the store
	}
	var date string
	_, err := s.update(ctx, p.ClientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != Succeeded {
			return Change{}, apierr.New(apierr.FailedPrecondition, "NOT_SUCCEEDED", "only a SUCCEEDED connection has a bank to move in time")
		}
		in, err := s.institution(ctx, c.InstitutionID)
		if err != nil {
			return Change{}, err
		}
		tm, ok := s.providers[in.Provider].(TimeMachine)
		if !ok {
			return Change{}, errNotSimulated
		}
		l, _, err := s.openLogin(c, sec, in)
		if err != nil {
			return Change{}, err
		}
		state, d, err := tm.AdvanceDays(l, days)
		if err != nil {
			return Change{}, fmt.Errorf("advance %s: %w", in.Provider, err)
		}
		sec.ProviderState, date = s.box.Seal(state, []byte("state:"+c.ID)), d
		return Change{}, nil
	})
	return date, err
}

// Link is what the services that read a connection's data upstream need.
type Link struct {
	Connection  Connection
	Institution Institution
	// UpstreamState is the provider's state after the login, opened: only the provider's own
	// adapters read it.
	UpstreamState []byte
}

// ConnectionLink returns a connection's link for another service, which names the client.
func (s *Service) ConnectionLink(ctx context.Context, p caller.Principal, clientID, id string) (Link, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return Link{}, ErrConnectionNotFound
	}
	c, sec, err := s.store.ConnectionSecrets(ctx, clientID, id)
	if err != nil {
		return Link{}, err
	}
	in, err := s.institution(ctx, c.InstitutionID)
	if err != nil {
		return Link{}, err
	}
	l := Link{Connection: c, Institution: in}
	if sec.ProviderState != nil {
		if l.UpstreamState, err = s.box.Open(sec.ProviderState, []byte("state:"+c.ID)); err != nil {
			return Link{}, fmt.Errorf("open provider state: %w", err)
		}
	}
	return l, nil
}

// FireStatusEvent writes a connection.status_changed event with the current status (sandbox only).
func (s *Service) FireStatusEvent(ctx context.Context, p caller.Principal, id string) (string, error) {
	return s.store.FireStatusEvent(ctx, p.ClientID, id, s.now().UTC())
}

// dropBadValidations clears field validations that are not RE2 expressions (an upstream's
// regex may use lookarounds or backreferences), saying so, so that the catalog never claims a
// check that CheckCredentials cannot make.
func (s *Service) dropBadValidations(ctx context.Context, provider string, ins []Institution) {
	for i := range ins {
		for j := range ins[i].Fields {
			f := &ins[i].Fields[j]
			if f.Validation == "" {
				continue
			}
			if _, err := regexp.Compile(f.Validation); err != nil {
				s.log.WarnContext(ctx, "catalog: a field's validation is not an RE2 expression; it is not checked",
					"provider", provider, "institution", ins[i].ExternalID, "field", f.Name, "err", err)
				f.Validation = ""
			}
		}
	}
}

// compiled returns a field validation compiled, from the service's cache: a catalog has few,
// and every connection checks them.
func (s *Service) compiled(pattern string) (*regexp.Regexp, error) {
	if re, ok := s.patterns.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	s.patterns.Store(pattern, re)
	return re, nil
}

// CheckCredentials checks values against an institution's fields: required fields present,
// values matching the field's validation and options, no unknown field.
func CheckCredentials(fields []CredentialField, values map[string]string) error {
	return checkCredentials(fields, values, regexp.Compile)
}

func checkCredentials(fields []CredentialField, values map[string]string, compile func(string) (*regexp.Regexp, error)) error {
	known := map[string]CredentialField{}
	for _, f := range fields {
		known[f.Name] = f
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := known[name]; !ok {
			return apierr.Invalid("credentials."+name, "is not a field of this institution")
		}
	}
	for _, f := range fields {
		v, ok := values[f.Name]
		field := "credentials." + f.Name
		switch {
		case !ok || v == "":
			if f.Required {
				return apierr.Invalid(field, "is required")
			}
			continue
		case f.Type == Select && !slices.ContainsFunc(f.Options, func(o Option) bool { return o.Value == v }):
			return apierr.Invalid(field, "is not one of the field's options")
		case f.Validation != "":
			re, err := compile(f.Validation)
			if err == nil && !re.MatchString(v) {
				return apierr.Invalid(field, "does not match the format the institution expects")
			}
		}
	}
	return nil
}

// usernameHint masks the username field's value so a user can tell connections apart.
func usernameHint(fields []CredentialField, values map[string]string) string {
	for _, f := range fields {
		if f.IsUsername && f.Type != Password {
			v := []rune(values[f.Name])
			if len(v) <= 4 {
				return strings.Repeat("•", len(v))
			}
			return string(v[:2]) + strings.Repeat("•", len(v)-4) + string(v[len(v)-2:])
		}
	}
	return ""
}

func (s *Service) sealCredentials(connectionID string, creds map[string]string) ([]byte, error) {
	raw, err := json.Marshal(creds)
	if err != nil {
		return nil, err
	}
	return s.box.Seal(raw, []byte("credentials:"+connectionID)), nil
}

// GetConnection returns a connection and its timeline, if the caller may see it.
func (s *Service) GetConnection(ctx context.Context, p caller.Principal, id string) (Connection, []Step, error) {
	c, steps, err := s.store.GetConnection(ctx, p.ClientID, id)
	if err != nil {
		return Connection{}, nil, err
	}
	if p.UserID != "" && c.UserID != p.UserID {
		// Widget sessions and task tokens see their own user's connections only.
		return Connection{}, nil, ErrConnectionNotFound
	}
	return c, steps, nil
}

// ListConnections lists a client's connections (a task token: its user's).
func (s *Service) ListConnections(ctx context.Context, p caller.Principal, userID string, page Page) ([]Connection, error) {
	if p.UserID != "" {
		if userID != "" && userID != p.UserID {
			return nil, nil
		}
		userID = p.UserID
	}
	return s.store.ListConnections(ctx, p.ClientID, userID, page)
}

// SubmitMFA records the answers to the pending challenge and queues them for the upstream.
func (s *Service) SubmitMFA(ctx context.Context, p caller.Principal, id, challengeID string, answers map[string]string) (Connection, error) {
	if _, _, err := s.GetConnection(ctx, p, id); err != nil {
		return Connection{}, err
	}
	now := s.now().UTC()
	return s.update(ctx, p.ClientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		switch {
		case c.Status != WaitingMFA || c.Challenge == nil:
			return Change{}, ErrNotWaitingMFA
		case c.Challenge.ID != challengeID:
			return Change{}, ErrStaleChallenge
		case !now.Before(c.Challenge.ExpiresAt):
			return Change{}, ErrNotWaitingMFA
		}
		for _, f := range c.Challenge.Fields {
			if answers[f.Name] == "" {
				return Change{}, apierr.Invalid("answers."+f.Name, "is required")
			}
		}
		raw, err := json.Marshal(answers)
		if err != nil {
			return Change{}, err
		}
		sec.Answers = s.box.Seal(raw, []byte("answers:"+c.ID))
		c.Status, c.Challenge, c.UpdatedAt = Running, nil, now
		return Change{Step: &Step{Status: Running, Message: "two-factor answer received", At: now}, Jobs: []Job{{Kind: JobAnswer}}}, nil
	})
}

// DeleteConnection deletes a connection and destroys its credentials.
func (s *Service) DeleteConnection(ctx context.Context, p caller.Principal, id string) error {
	c, _, err := s.GetConnection(ctx, p, id)
	if err != nil {
		return err
	}
	if err := s.revoke(ctx, c); err != nil {
		return err
	}
	return s.store.DeleteConnection(ctx, p.ClientID, id)
}

var errRevokeUpstream = apierr.New(apierr.Unavailable, "UPSTREAM_UNAVAILABLE", "the institution's provider could not be told to end its access; nothing was deleted, try again")

// revoke ends the upstream's access (a consent, a connection) before the connection is deleted
// here: deleting first would lose the session needed to revoke it. An upstream that cannot be
// reached fails the deletion, which the caller retries.
func (s *Service) revoke(ctx context.Context, c Connection) error {
	r, ok := s.providers[c.Provider].(Revoker)
	if !ok {
		return nil
	}
	c, sec, err := s.store.ConnectionSecrets(ctx, c.ClientID, c.ID)
	if err != nil {
		return err
	}
	in, err := s.institution(ctx, c.InstitutionID)
	if err != nil {
		return err
	}
	l, _, err := s.openLogin(&c, &sec, in)
	if err != nil {
		return err
	}
	if l.State == nil {
		return nil // the upstream never got far enough to hold anything
	}
	if err := r.Revoke(ctx, l); err != nil {
		s.log.WarnContext(ctx, "upstream revocation failed", "connection_id", c.ID, "provider", c.Provider, "err", err)
		return errRevokeUpstream
	}
	return nil
}

// pollNowKey collapses the extra polls of a burst of webhooks about one connection into one.
func pollNowKey(connectionID string) string { return "poll_now:" + connectionID }

// HandleUpstreamEvent polls now each connection an upstream webhook concerns; a provider without
// an EventRouter, or not run here, has nothing to do.
func (s *Service) HandleUpstreamEvent(ctx context.Context, provider, eventType string, body []byte) error {
	r, ok := s.providers[provider].(EventRouter)
	if !ok {
		return nil
	}
	ids, err := r.ConnectionsFor(ctx, eventType, body)
	if err != nil {
		return apierr.Invalid("body", "is not a "+provider+" webhook this service can read")
	}
	if _, ok := r.(Referencer); ok && len(ids) > 0 {
		if ids, err = s.store.ConnectionsByRefs(ctx, provider, ids); err != nil {
			return fmt.Errorf("look up %s refs: %w", provider, err)
		}
	}
	for _, id := range ids {
		// The provider is checked too: a webhook names only its own provider's connections.
		if err := s.store.PollNow(ctx, provider, id, JobPollNow, pollNowKey(id)); err != nil {
			return fmt.Errorf("poll %s now: %w", id, err)
		}
	}
	return nil
}

// Reauthenticate logs a failed or succeeded connection in again, with new credentials when
// given, keeping its id.
func (s *Service) Reauthenticate(ctx context.Context, p caller.Principal, id string, creds map[string]string) (Connection, error) {
	c, _, err := s.GetConnection(ctx, p, id)
	if err != nil {
		return Connection{}, err
	}
	in, err := s.institution(ctx, c.InstitutionID)
	if err != nil {
		return Connection{}, err
	}
	now := s.now().UTC()
	if in.Auth == Redirect {
		if len(in.Fields) == 0 && len(creds) > 0 {
			return Connection{}, apierr.Invalid("credentials", "a redirect institution takes no credentials")
		}
		if !c.Status.Final() {
			return Connection{}, ErrNotFinal
		}
		var sealedCreds []byte
		if len(creds) > 0 {
			if err := checkCredentials(in.Fields, creds, s.compiled); err != nil {
				return Connection{}, err
			}
			if sealedCreds, err = s.sealCredentials(id, creds); err != nil {
				return Connection{}, err
			}
		}
		authURL, stateHash, sealedState, err := s.startRedirect(ctx, c, in, creds)
		if err != nil {
			return Connection{}, err
		}
		return s.update(ctx, p.ClientID, id, func(c *Connection, sec *Secrets) (Change, error) {
			if !c.Status.Final() {
				return Change{}, ErrNotFinal
			}
			if sealedCreds != nil {
				sec.Credentials = sealedCreds
			}
			sec.RedirectState, sec.ProviderState, sec.Answers, sec.Round = stateHash, sealedState, nil, 0
			c.Status, c.Reason, c.UpstreamCode, c.AuthorizationURL, c.UpdatedAt = WaitingRedirect, NoReason, "", authURL, now
			return Change{
				Step: &Step{Status: WaitingRedirect, Message: "re-authentication: waiting for the user at the institution", At: now},
				Jobs: []Job{{Kind: JobRedirectTimeout, RunAt: now.Add(RedirectTimeout), MaxAttempts: jobs.DefaultMaxAttempts}},
			}, nil
		})
	}
	var sealed []byte
	if len(creds) > 0 {
		if err := checkCredentials(in.Fields, creds, s.compiled); err != nil {
			return Connection{}, err
		}
		if sealed, err = s.sealCredentials(id, creds); err != nil {
			return Connection{}, err
		}
	}
	return s.update(ctx, p.ClientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		if !c.Status.Final() {
			return Change{}, ErrNotFinal
		}
		if sealed != nil {
			sec.Credentials = sealed
		}
		sec.ProviderState, sec.Answers, sec.Round = nil, nil, 0
		c.Status, c.Reason, c.UpstreamCode, c.Challenge, c.UpdatedAt = Pending, NoReason, "", nil, now
		return Change{Step: &Step{Status: Pending, Message: "re-authentication requested", At: now}, Jobs: []Job{{Kind: JobLogin}}}, nil
	})
}

// Watch sends the connection and timeline now and after every change, until it is final or ctx
// ends.
func (s *Service) Watch(ctx context.Context, p caller.Principal, id string, send func(Connection, []Step) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.store.Changes(ctx)
	if err != nil {
		return err
	}
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	var sent string
	for {
		c, steps, err := s.GetConnection(ctx, p, id)
		if err != nil {
			return err
		}
		if seen := fmt.Sprint(len(steps), c.Status, c.UpdatedAt.UnixNano()); seen != sent {
			if err := send(c, steps); err != nil {
				return err
			}
			sent = seen
		}
		if c.Status.Final() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case changed := <-changes:
			if changed != id {
				continue
			}
		case <-poll.C:
		}
	}
}

// ---- background work

// The jobs of a connection's login.
const (
	JobLogin  = "connection.login"
	JobAnswer = "connection.answer"
	JobPoll   = "connection.poll"
	// JobPollNow is an extra poll an upstream webhook asked for; it never schedules another.
	JobPollNow    = "connection.poll_now"
	JobMFATimeout = "connection.mfa_timeout"
	JobCallback   = "connection.callback"
	// JobRedirectTimeout fails a connection whose user never came back from a redirect.
	JobRedirectTimeout = "connection.redirect_timeout"
	// JobSettleConsent tells the consent service how the connection behind a consent ended.
	JobSettleConsent = "connection.settle_consent"
)

// Handlers are the service's job handlers.
func (s *Service) Handlers() map[string]jobs.Handler {
	return map[string]jobs.Handler{
		JobLogin:           s.handle(JobLogin),
		JobAnswer:          s.handle(JobAnswer),
		JobPoll:            s.handle(JobPoll),
		JobPollNow:         s.handle(JobPollNow),
		JobMFATimeout:      s.mfaTimeout,
		JobCallback:        s.handle(JobCallback),
		JobRedirectTimeout: s.redirectTimeout,
		JobSettleConsent:   s.settleConsent,
	}
}

type jobArgs struct {
	ConnectionID string `json:"connection_id"`
	ChallengeID  string `json:"challenge_id"`
	ClientID     string `json:"client_id"`
	ConsentID    string `json:"consent_id"`
	Authorised   string `json:"authorised"`
	Reason       string `json:"reason"`
}

// settleJob is the job that settles c's consent, if c has one and its end decides it: success
// authorises it; a user who denied at the institution rejects it; other failures leave it
// waiting (the user may retry, and an unused consent expires).
func settleJob(c *Connection) []Job {
	if c.ConsentID == "" || (c.Status != Succeeded && c.Reason != RedirectDenied) {
		return nil
	}
	// Retried for many hours: a consent service that is down delays the settlement, never loses it.
	return []Job{{Kind: JobSettleConsent, MaxAttempts: jobs.DefaultMaxAttempts, UniqueKey: "settle:" + c.ConsentID + ":" + c.ID, Args: map[string]string{
		"client_id": c.ClientID, "consent_id": c.ConsentID, "authorised": fmt.Sprint(c.Status == Succeeded), "reason": string(c.Reason),
	}}}
}

func (s *Service) settleConsent(ctx context.Context, j jobs.Job) error {
	var a jobArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		return jobs.Cancel(fmt.Errorf("bad args: %w", err))
	}
	return s.consents.Settle(ctx, a.ClientID, a.ConsentID, a.ConnectionID, a.Authorised == "true", a.Reason)
}

// expects says which statuses a job acts on; any other means the job is stale (the connection
// moved on, was re-authenticated or deleted) and it ends quietly.
var expects = map[string][]Status{
	JobLogin:    {Pending, Starting},
	JobAnswer:   {Running},
	JobPoll:     {Running},
	JobPollNow:  {Running},
	JobCallback: {Running},
}

// handle runs one step of a login: it claims the connection, calls the provider outside any
// transaction, and applies the outcome. A crash in between leaves the job to run again after
// its lease; a job that keeps failing ends the connection FAILED, never stuck.
func (s *Service) handle(kind string) jobs.Handler {
	return func(ctx context.Context, j jobs.Job) error {
		var a jobArgs
		if err := json.Unmarshal(j.Args, &a); err != nil {
			return jobs.Cancel(fmt.Errorf("bad args: %w", err))
		}
		var login Login
		var answers map[string]string
		var in Institution
		claimed, err := s.update(ctx, "", a.ConnectionID, func(c *Connection, sec *Secrets) (Change, error) {
			if !slices.Contains(expects[kind], c.Status) || ((kind == JobAnswer || kind == JobCallback) && sec.Answers == nil) {
				return Change{}, errStale
			}
			var err error
			if in, err = s.institution(ctx, c.InstitutionID); err != nil {
				return Change{}, err
			}
			if login, answers, err = s.openLogin(c, sec, in); err != nil {
				return Change{}, err
			}
			if c.Status == Pending {
				now := s.now().UTC()
				c.Status, c.UpdatedAt = Starting, now
				return Change{Step: &Step{Status: Starting, Message: "login started", At: now}}, nil
			}
			return Change{}, nil
		})
		switch {
		case errors.Is(err, errStale), errors.Is(err, ErrConnectionNotFound):
			return nil
		case err != nil && j.Attempt >= j.MaxAttempts:
			s.log.ErrorContext(ctx, "connection login step failed for good", "connection_id", a.ConnectionID, "job", kind, "err", err)
			return s.fail(ctx, a.ConnectionID, Internal, "", "the login could not go on")
		case err != nil:
			return err
		}
		prov, ok := s.providers[claimed.Provider]
		if !ok {
			return s.fail(ctx, claimed.ID, Internal, "", "provider not enabled")
		}
		var out Outcome
		switch kind {
		case JobLogin:
			out, err = prov.Start(ctx, login)
		case JobAnswer:
			out, err = prov.Answer(ctx, login, answers)
		case JobPoll, JobPollNow:
			out, err = prov.Poll(ctx, login)
		case JobCallback:
			out, err = prov.Callback(ctx, login, answers)
		}
		if err != nil {
			if j.Attempt >= j.MaxAttempts {
				return s.fail(ctx, claimed.ID, Internal, "", "the provider kept failing")
			}
			// The provider's own text is not passed on: an upstream error can echo what it
			// was sent, credentials included.
			return fmt.Errorf("%s %s: provider %s failed (%T)", kind, claimed.ID, claimed.Provider, err)
		}
		if err := validOutcome(out); err != nil {
			s.log.ErrorContext(ctx, "provider returned an unusable outcome", "connection_id", claimed.ID, "provider", claimed.Provider, "err", err)
			return s.fail(ctx, claimed.ID, Internal, out.UpstreamCode, "the provider answered something Puente cannot use")
		}
		return s.apply(ctx, claimed.ID, kind, out)
	}
}

var errStale = errors.New("stale job")

func (s *Service) openLogin(c *Connection, sec *Secrets, in Institution) (Login, map[string]string, error) {
	l := Login{ConnectionID: c.ID, ClientID: c.ClientID, UserID: c.UserID, Institution: in, Round: sec.Round}
	if sec.Credentials != nil {
		raw, err := s.box.Open(sec.Credentials, []byte("credentials:"+c.ID))
		if err != nil {
			return l, nil, fmt.Errorf("open credentials: %w", err)
		}
		if err := json.Unmarshal(raw, &l.Credentials); err != nil {
			return l, nil, err
		}
	}
	if sec.ProviderState != nil {
		raw, err := s.box.Open(sec.ProviderState, []byte("state:"+c.ID))
		if err != nil {
			return l, nil, fmt.Errorf("open provider state: %w", err)
		}
		l.State = raw
	}
	var answers map[string]string
	if sec.Answers != nil {
		raw, err := s.box.Open(sec.Answers, []byte("answers:"+c.ID))
		if err != nil {
			return l, nil, fmt.Errorf("open answers: %w", err)
		}
		if err := json.Unmarshal(raw, &answers); err != nil {
			return l, nil, err
		}
	}
	return l, answers, nil
}

// validOutcome rejects outcomes apply cannot record, so that a provider's mistake fails the
// connection once instead of being retried (and the upstream called again).
func validOutcome(out Outcome) error {
	switch out.Status {
	case Running, Succeeded, Failed:
		return nil
	case WaitingMFA:
		if out.Challenge == nil || len(out.Challenge.Fields) == 0 {
			return errors.New("two-factor without a challenge")
		}
		return nil
	}
	return fmt.Errorf("status %q", out.Status)
}

// apply records a provider's outcome, if the connection is still where the job left it.
func (s *Service) apply(ctx context.Context, id, kind string, out Outcome) error {
	now := s.now().UTC()
	_, err := s.update(ctx, "", id, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != Starting && c.Status != Running {
			return Change{}, errStale
		}
		var refs []string
		if out.State != nil {
			sec.ProviderState = s.box.Seal(out.State, []byte("state:"+c.ID))
			if r, ok := s.providers[c.Provider].(Referencer); ok {
				refs = append([]string{}, r.Refs(out.State)...) // not nil: the refs are replaced
			}
		}
		if kind == JobAnswer || kind == JobCallback {
			sec.Answers = nil
		}
		if kind == JobAnswer {
			sec.Round++
		}
		c.UpstreamCode, c.UpdatedAt, c.Challenge, c.Reason = out.UpstreamCode, now, nil, NoReason
		step := &Step{Status: out.Status, UpstreamCode: out.UpstreamCode, Message: out.Message, At: now}
		var jobsToRun []Job
		stepIfNew := false
		switch out.Status {
		case Running:
			c.Status = Running
			if kind != JobPollNow { // a webhook's extra poll leaves the scheduled chain to go on
				jobsToRun = append(jobsToRun, Job{Kind: JobPoll, RunAt: now.Add(max(out.PollAfter, s.minPoll))})
			}
			// A poll that only says "still running" is noise, but a new upstream code (Syncfy's
			// 100, 101, 102) is progress the timeline should show.
			stepIfNew = kind == JobPoll || kind == JobPollNow
		case WaitingMFA:
			// Challenge ids are ours, fresh each round, so an answer or a timeout meant for an
			// earlier round (or an earlier login of the same connection) never matches.
			ch := *out.Challenge
			ch.ID = ids.New("chl")
			c.Status, c.Challenge = WaitingMFA, &ch
			jobsToRun = append(jobsToRun, Job{Kind: JobMFATimeout, ChallengeID: ch.ID, RunAt: ch.ExpiresAt, MaxAttempts: jobs.DefaultMaxAttempts})
		case Succeeded:
			c.Status = Succeeded
			sec.Answers = nil
			jobsToRun = settleJob(c)
		case Failed:
			c.Status, c.Reason = Failed, out.Reason
			step.Reason = out.Reason
			sec.Answers = nil
			jobsToRun = settleJob(c)
		}
		return Change{Step: step, StepIfNew: stepIfNew, Jobs: jobsToRun, Refs: refs}, nil
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrConnectionNotFound) {
		return nil
	}
	return err
}

func (s *Service) fail(ctx context.Context, id string, reason Reason, code, msg string) error {
	now := s.now().UTC()
	_, err := s.update(ctx, "", id, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status.Final() {
			return Change{}, errStale
		}
		c.Status, c.Reason, c.UpstreamCode, c.Challenge, c.UpdatedAt = Failed, reason, code, nil, now
		sec.Answers = nil
		return Change{Step: &Step{Status: Failed, Reason: reason, UpstreamCode: code, Message: msg, At: now}}, nil
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrConnectionNotFound) {
		return nil
	}
	return err
}

// StallAfter is how long a connection may go without any change before Housekeep fails it: a
// backstop for a login whose jobs were lost (a worker killed on the last attempt).
const StallAfter = time.Hour

// Housekeep fails connections that stalled, so that none stays in progress forever, and prunes
// the outcome counts the observed health no longer reads.
func (s *Service) Housekeep(ctx context.Context) error {
	if _, err := s.store.PruneOutcomes(ctx, s.now().UTC().Add(-OutcomeRetention)); err != nil {
		return fmt.Errorf("prune outcomes: %w", err)
	}
	stalled, err := s.store.StalledConnections(ctx, s.now().UTC().Add(-StallAfter))
	if err != nil {
		return fmt.Errorf("stalled connections: %w", err)
	}
	for _, id := range stalled {
		if err := s.fail(ctx, id, Internal, "", "the login stalled"); err != nil {
			return err
		}
	}
	return nil
}

// redirectTimeout fails a connection still waiting for its user to come back.
func (s *Service) redirectTimeout(ctx context.Context, j jobs.Job) error {
	var a jobArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		return jobs.Cancel(fmt.Errorf("bad args: %w", err))
	}
	now := s.now().UTC()
	_, err := s.update(ctx, "", a.ConnectionID, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != WaitingRedirect {
			return Change{}, errStale
		}
		if left := RedirectTimeout - now.Sub(c.UpdatedAt); left > 0 {
			return Change{}, jobs.Snooze(left)
		}
		sec.RedirectState = nil
		c.Status, c.Reason, c.AuthorizationURL, c.UpdatedAt = Failed, UserActionRequired, "", now
		return Change{Step: &Step{Status: Failed, Reason: UserActionRequired, Message: "the user did not come back from the institution", At: now}}, nil
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrConnectionNotFound) {
		return nil
	}
	return err
}

// mfaTimeout fails a connection whose challenge went unanswered past its deadline.
func (s *Service) mfaTimeout(ctx context.Context, j jobs.Job) error {
	var a jobArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		return jobs.Cancel(fmt.Errorf("bad args: %w", err))
	}
	now := s.now().UTC()
	_, err := s.update(ctx, "", a.ConnectionID, func(c *Connection, sec *Secrets) (Change, error) {
		if c.Status != WaitingMFA || c.Challenge == nil || c.Challenge.ID != a.ChallengeID {
			return Change{}, errStale
		}
		if now.Before(c.Challenge.ExpiresAt) {
			// The queue's clock ran ahead of ours: come back at the deadline.
			return Change{}, jobs.Snooze(c.Challenge.ExpiresAt.Sub(now))
		}
		c.Status, c.Reason, c.Challenge, c.UpdatedAt = Failed, MFATimeout, nil, now
		return Change{Step: &Step{Status: Failed, Reason: MFATimeout, Message: "two-factor challenge expired unanswered", At: now}}, nil
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrConnectionNotFound) {
		return nil
	}
	return err
}
