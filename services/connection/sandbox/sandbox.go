package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/sandboxdata"
	"puente.dev/services/connection"
)

// Name is the provider id of the sandbox.
const Name = "sandbox"

// The scripted usernames; see the package documentation for what each does.
const (
	UserGood       = "user_good"
	UserOTP        = "user_otp"
	UserOTP2       = "user_otp2"
	UserImage      = "user_image"
	UserCaptcha    = "user_captcha"
	UserOTPTimeout = "user_otp_timeout"
	UserSlow       = "user_slow"
	UserRelogin    = "user_relogin"
	UserBadPass    = "user_badpass"
	UserLocked     = "user_locked"
	UserAction     = "user_action"
	UserPartial    = "user_partial"
	UserAccounts   = "user_accounts"
)

// The right answers.
const (
	// GoodPassword is every scripted user's password.
	GoodPassword = "pass_good"
	// OTPCode answers the "otp" challenge of user_otp, user_otp2 and user_otp_timeout.
	OTPCode = "123456"
	// PIN answers the "pin" challenge of user_otp2.
	PIN = "4321"
	// GreenSquare is the option value of the green square of user_image.
	GreenSquare = "img_3"
	// CaptchaText answers user_captcha's captcha (case-insensitive).
	CaptchaText = "PUENTE"
	// ShareAccount and SkipAccount answer each field of user_accounts' choice of accounts.
	ShareAccount = "share"
	SkipAccount  = "skip"
)

// AccountField is the field of user_accounts' challenge that asks about the account id.
func AccountField(id string) string { return "account_" + id }

// Timings.
const (
	// ChallengeTTL is how long a challenge may be answered.
	ChallengeTTL = 2 * time.Minute
	// ShortChallengeTTL is how long user_otp_timeout's challenge may be answered.
	ShortChallengeTTL = 3 * time.Second
	// PollAfter is how long user_slow asks the service to wait between polls.
	PollAfter = 2 * time.Second
	// slowPolls is how many polls user_slow needs before it succeeds.
	slowPolls = 2
)

// Syncfy job codes the sandbox reports.
const (
	codeRunning      = "102"
	codeFinish       = "200"
	codeUnauthorized = "401"
	codeInvalidToken = "403"
	codeLocked       = "405"
	codeUserAction   = "408"
	codeWaitingTwofa = "410"
	codeTwofaTimeout = "411"
	codeError        = "500"
)

// Provider is the sandbox upstream. It is safe for concurrent use.
type Provider struct {
	now          func() time.Time
	authorizeURL string
}

var _ connection.Provider = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the clock challenge deadlines are computed (and checked) with.
func WithClock(now func() time.Time) Option {
	return func(p *Provider) {
		if now != nil {
			p.now = now
		}
	}
}

// New returns the sandbox provider.
func New(opts ...Option) *Provider {
	p := &Provider{now: time.Now, authorizeURL: AuthorizeURL}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name implements connection.Provider.
func (p *Provider) Name() string { return Name }

// Institutions implements connection.Provider: a fixed catalog, freshly allocated on every call.
func (p *Provider) Institutions(ctx context.Context) ([]connection.Institution, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	insts := catalog()
	for i := range insts {
		insts[i].Provider = Name
	}
	return insts, nil
}

// step is one two-factor question of a script.
type step struct {
	field connection.ChallengeField
	image string
	right func(answer string) bool
}

// script is the two-factor questions of one user.
type script struct {
	steps []step
	ttl   time.Duration
}

func equals(want string) func(string) bool {
	return func(got string) bool { return strings.TrimSpace(got) == want }
}

var (
	otpStep = step{
		field: connection.ChallengeField{Name: "otp", Type: connection.ChallengeText, Label: "Code sent by SMS"},
		right: equals(OTPCode),
	}
	pinStep = step{
		field: connection.ChallengeField{Name: "pin", Type: connection.ChallengePassword, Label: "Card PIN"},
		right: equals(PIN),
	}
	imageStep = step{
		field: connection.ChallengeField{
			Name: "image", Type: connection.ChallengeOptions, Label: "Select the green square",
			Options: []connection.Option{
				{Value: "img_1", Label: "The red square", Image: squareImages[0]},
				{Value: "img_2", Label: "The blue square", Image: squareImages[1]},
				{Value: GreenSquare, Label: "The green square", Image: squareImages[2]},
				{Value: "img_4", Label: "The yellow square", Image: squareImages[3]},
			},
		},
		right: equals(GreenSquare),
	}
	captchaStep = step{
		field: connection.ChallengeField{Name: "captcha", Type: connection.ChallengeText, Label: "Type the characters in the image"},
		image: captchaImage,
		right: func(got string) bool { return strings.EqualFold(strings.TrimSpace(got), CaptchaText) },
	}
)

// scripts holds the users that log in through two-factor challenges.
var scripts = map[string]script{
	UserOTP:        {steps: []step{otpStep}, ttl: ChallengeTTL},
	UserOTP2:       {steps: []step{otpStep, pinStep}, ttl: ChallengeTTL},
	UserImage:      {steps: []step{imageStep}, ttl: ChallengeTTL},
	UserCaptcha:    {steps: []step{captchaStep}, ttl: ChallengeTTL},
	UserOTPTimeout: {steps: []step{otpStep}, ttl: ShortChallengeTTL},
}

// Phases of a login that is not over.
const (
	phaseMFA      = "mfa"
	phaseAccounts = "accounts" // user_accounts: choosing the accounts to share
	phaseRunning  = "running"
	phaseLinked   = "linked" // logged in: the state names the bank data
)

const stateVersion = 1

// loginState is what the sandbox keeps between calls, in Login.State.
type loginState struct {
	V           int    `json:"v"`
	Institution string `json:"inst"`
	User        string `json:"user"`
	Phase       string `json:"phase"`
	Step        int    `json:"step,omitempty"`    // index of the pending question in the user's script
	Retries     int    `json:"retries,omitempty"` // wrong answers to the pending question
	Round       int    `json:"round,omitempty"`   // round of the pending challenge
	Expires     int64  `json:"expires,omitempty"` // deadline of the pending challenge, Unix ms
	Polls       int    `json:"polls,omitempty"`
	Day         int    `json:"day,omitempty"` // linked: days the bank has moved on since AnchorDate
	// Skipped are the accounts the user chose not to share (user_accounts); the extraction
	// service's sandbox adapter leaves them out.
	Skipped []string `json:"skipped,omitempty"`
}

func (s loginState) encode() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("sandbox: encode state: " + err.Error()) // a struct of strings and ints always encodes
	}
	return b
}

func decodeState(b []byte, inst connection.Institution) (loginState, error) {
	var s loginState
	if len(b) == 0 {
		return s, fmt.Errorf("sandbox: no login state: Start was not called, or its state was lost")
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("sandbox: decode login state: %w", err)
	}
	if s.V != stateVersion {
		return s, fmt.Errorf("sandbox: login state version %d, want %d", s.V, stateVersion)
	}
	if s.Institution != inst.ExternalID {
		return s, fmt.Errorf("sandbox: login state is for institution %q, not %q", s.Institution, inst.ExternalID)
	}
	switch s.Phase {
	case phaseMFA:
		sc, ok := scripts[s.User]
		if !ok {
			return s, fmt.Errorf("sandbox: login state names %q, who has no two-factor script", s.User)
		}
		if s.Step < 0 || s.Step >= len(sc.steps) || s.Retries < 0 || s.Round < 0 {
			return s, fmt.Errorf("sandbox: login state is out of range")
		}
	case phaseAccounts:
		if s.User != UserAccounts || s.Retries < 0 || s.Round < 0 {
			return s, fmt.Errorf("sandbox: login state is not a choice of accounts")
		}
	case phaseRunning:
		if s.User != UserSlow || s.Polls < 0 || s.Polls >= slowPolls {
			return s, fmt.Errorf("sandbox: login state is not a running login")
		}
	case phaseLinked:
		if s.User == "" || s.Day < 0 {
			return s, fmt.Errorf("sandbox: login state is not a linked login")
		}
	default:
		return s, fmt.Errorf("sandbox: login state phase %q", s.Phase)
	}
	return s, nil
}

// institution is the catalog's view of the login's institution, or the login's own copy of it for
// an institution the catalog does not have (so tests may make one up).
func institution(l connection.Login) connection.Institution {
	if inst, ok := lookup(l.Institution.ExternalID); ok {
		if l.Institution.Health == connection.Down {
			inst.Health = connection.Down
		}
		return inst
	}
	return l.Institution
}

func credentialsInstitution(l connection.Login, method string) (connection.Institution, error) {
	inst := institution(l)
	if inst.Auth != connection.Credentials {
		return inst, fmt.Errorf("sandbox: %s on institution %q, whose auth is %q, not CREDENTIALS", method, inst.ExternalID, inst.Auth)
	}
	return inst, nil
}

func failed(reason connection.Reason, code, msg string) connection.Outcome {
	return connection.Outcome{Status: connection.Failed, Reason: reason, UpstreamCode: code, Message: msg}
}

// succeeded links user at inst: the state it keeps is whose bank data the extraction service's
// sandbox adapter reads (see Link), starting on day 0.
func succeeded(inst, user string) connection.Outcome {
	state := loginState{V: stateVersion, Institution: inst, User: user, Phase: phaseLinked}
	return connection.Outcome{Status: connection.Succeeded, UpstreamCode: codeFinish, Message: "Finish: the information was processed", State: state.encode()}
}

func unavailable() connection.Outcome {
	return failed(connection.InstitutionUnavailable, codeError, "Error: the institution is not available")
}

func unauthorized(msg string) connection.Outcome {
	return failed(connection.InvalidCredentials, codeUnauthorized, "Unauthorized: "+msg)
}

func normalize(username string) string { return strings.ToLower(strings.TrimSpace(username)) }

// Start implements connection.Provider.
func (p *Provider) Start(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connection.Outcome{}, err
	}
	inst, err := credentialsInstitution(l, "Start")
	if err != nil {
		return connection.Outcome{}, err
	}
	if inst.Health == connection.Down {
		return unavailable(), nil
	}

	usernameName, passwordName := "username", "password"
	for _, f := range inst.Fields {
		v := strings.TrimSpace(l.Credentials[f.Name])
		if f.Required && v == "" {
			return unauthorized("the field " + f.Name + " is missing"), nil
		}
		if f.Type == connection.Select && v != "" && !slices.ContainsFunc(f.Options, func(o connection.Option) bool { return o.Value == v }) {
			return unauthorized("the field " + f.Name + " has no option " + strconv.Quote(v)), nil
		}
		if f.IsUsername {
			usernameName = f.Name
		}
	}
	for _, f := range inst.Fields {
		if f.Type == connection.Password {
			passwordName = f.Name
			break
		}
	}
	user := normalize(l.Credentials[usernameName])
	password := l.Credentials[passwordName]

	switch {
	case user == UserBadPass:
		return unauthorized("the username or password is not valid"), nil
	case password != GoodPassword:
		return unauthorized("the username or password is not valid"), nil
	}
	switch user {
	case UserGood, UserRelogin, UserPartial:
		return succeeded(inst.ExternalID, user), nil
	case UserLocked:
		return failed(connection.Locked, codeLocked, "Locked: the account is locked at the institution"), nil
	case UserAction:
		return failed(connection.UserActionRequired, codeUserAction, "UserAction: the user must act on the institution's site"), nil
	case UserSlow:
		s := loginState{V: stateVersion, Institution: inst.ExternalID, User: user, Phase: phaseRunning}
		return running(s), nil
	}
	if _, ok := scripts[user]; ok {
		s := loginState{V: stateVersion, Institution: inst.ExternalID, User: user, Phase: phaseMFA}
		return p.ask(l, s, "WaitingTwofa: the institution asks for a second factor"), nil
	}
	if user == UserAccounts {
		s := loginState{V: stateVersion, Institution: inst.ExternalID, User: user, Phase: phaseAccounts}
		return p.askAccounts(l, s, "the accounts arrive disabled: choose the ones to share"), nil
	}
	return unauthorized("the username or password is not valid"), nil
}

func running(s loginState) connection.Outcome {
	return connection.Outcome{
		Status: connection.Running, UpstreamCode: codeRunning, Message: "Running: the login is in progress",
		PollAfter: PollAfter, State: s.encode(),
	}
}

// ask returns the challenge of s.Step as a new round.
func (p *Provider) ask(l connection.Login, s loginState, msg string) connection.Outcome {
	sc := scripts[s.User]
	st := sc.steps[s.Step]
	s.Round = max(l.Round, s.Round) + 1
	// Whole milliseconds, like the deadline kept in the state, and without a monotonic reading.
	expires := p.now().Add(sc.ttl).Truncate(time.Millisecond)
	s.Expires = expires.UnixMilli()

	field := st.field
	field.Options = slices.Clone(field.Options)
	return connection.Outcome{
		Status:       connection.WaitingMFA,
		UpstreamCode: codeWaitingTwofa,
		Message:      msg,
		Challenge: &connection.Challenge{
			ID:        challengeID(l.ConnectionID, s.Round),
			Round:     s.Round,
			Fields:    []connection.ChallengeField{field},
			Image:     st.image,
			ExpiresAt: expires,
		},
		State: s.encode(),
	}
}

// bankAccounts are the accounts of a user's bank, as the extraction service's adapter reads them.
func bankAccounts(user string, inst connection.Institution) []sandboxdata.Account {
	return sandboxdata.Snapshot(sandboxdata.Login{Seed: user, Country: inst.Country}, 0).Accounts
}

// askAccounts asks which of the bank's accounts to share, as Powens does when its accounts
// arrive disabled: one share/skip field per account.
func (p *Provider) askAccounts(l connection.Login, s loginState, msg string) connection.Outcome {
	s.Round = max(l.Round, s.Round) + 1
	expires := p.now().Add(ChallengeTTL).Truncate(time.Millisecond)
	s.Expires = expires.UnixMilli()
	ch := &connection.Challenge{ID: challengeID(l.ConnectionID, s.Round), Round: s.Round, ExpiresAt: expires, AccountSelection: true}
	for _, a := range bankAccounts(s.User, institution(l)) {
		ch.Fields = append(ch.Fields, connection.ChallengeField{
			Name: AccountField(a.ID), Type: connection.ChallengeOptions, Label: a.Name + " ••••" + a.Mask,
			Options: []connection.Option{{Value: ShareAccount, Label: "Share"}, {Value: SkipAccount, Label: "Don't share"}},
		})
	}
	return connection.Outcome{Status: connection.WaitingMFA, UpstreamCode: codeWaitingTwofa, Message: msg, Challenge: ch, State: s.encode()}
}

// chooseAccounts settles user_accounts' choice: every account answered share or skip, at least
// one shared; otherwise the question is asked again once, then the login fails MFA_FAILED.
func (p *Provider) chooseAccounts(l connection.Login, s loginState, answers map[string]string) connection.Outcome {
	var skipped []string
	shared := 0
	valid := true
	for _, a := range bankAccounts(s.User, institution(l)) {
		switch strings.TrimSpace(answers[AccountField(a.ID)]) {
		case ShareAccount:
			shared++
		case SkipAccount:
			skipped = append(skipped, a.ID)
		default:
			valid = false
		}
	}
	if !valid || shared == 0 {
		if s.Retries >= 1 {
			return failed(connection.MFAFailed, codeInvalidToken, "InvalidToken: no account was chosen")
		}
		s.Retries++
		return p.askAccounts(l, s, "answer share or skip for every account, and share at least one")
	}
	out := succeeded(s.Institution, s.User)
	linked := loginState{V: stateVersion, Institution: s.Institution, User: s.User, Phase: phaseLinked, Skipped: skipped}
	out.State = linked.encode()
	return out
}

// challengeID is "chl_" + the connection id without its type prefix + "_" + the round.
func challengeID(connectionID string, round int) string {
	suffix := connectionID
	if i := strings.LastIndexByte(suffix, '_'); i >= 0 {
		suffix = suffix[i+1:]
	}
	if suffix == "" {
		suffix = "sandbox"
	}
	return "chl_" + suffix + "_" + strconv.Itoa(round)
}

// Answer implements connection.Provider.
func (p *Provider) Answer(ctx context.Context, l connection.Login, answers map[string]string) (connection.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connection.Outcome{}, err
	}
	inst, err := credentialsInstitution(l, "Answer")
	if err != nil {
		return connection.Outcome{}, err
	}
	s, err := decodeState(l.State, inst)
	if err != nil {
		return connection.Outcome{}, err
	}
	if s.Phase != phaseMFA && s.Phase != phaseAccounts {
		return connection.Outcome{}, fmt.Errorf("sandbox: Answer on a login that is not waiting for a two-factor answer")
	}
	if inst.Health == connection.Down {
		return unavailable(), nil
	}
	if p.now().After(time.UnixMilli(s.Expires)) {
		return failed(connection.MFATimeout, codeTwofaTimeout, "TwofaTimeout: the answer came after the challenge expired"), nil
	}
	if s.Phase == phaseAccounts {
		return p.chooseAccounts(l, s, answers), nil
	}

	sc := scripts[s.User]
	if !sc.steps[s.Step].right(answers[sc.steps[s.Step].field.Name]) {
		if s.Retries >= 1 {
			return failed(connection.MFAFailed, codeInvalidToken, "InvalidToken: the answer is not valid"), nil
		}
		s.Retries++
		return p.ask(l, s, "WaitingTwofa: the answer is not valid, try again"), nil
	}
	if s.Step+1 == len(sc.steps) {
		return succeeded(inst.ExternalID, s.User), nil
	}
	s.Step++
	s.Retries = 0
	return p.ask(l, s, "WaitingTwofa: the institution asks for another factor"), nil
}

// Poll implements connection.Provider.
func (p *Provider) Poll(ctx context.Context, l connection.Login) (connection.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connection.Outcome{}, err
	}
	inst, err := credentialsInstitution(l, "Poll")
	if err != nil {
		return connection.Outcome{}, err
	}
	s, err := decodeState(l.State, inst)
	if err != nil {
		return connection.Outcome{}, err
	}
	if s.Phase != phaseRunning {
		return connection.Outcome{}, fmt.Errorf("sandbox: Poll on a login that is not running")
	}
	if inst.Health == connection.Down {
		return unavailable(), nil
	}
	s.Polls++
	if s.Polls >= slowPolls {
		return succeeded(inst.ExternalID, s.User), nil
	}
	return running(s), nil
}

// MaxDays is as far as AdvanceDays moves a bank from AnchorDate: ten years.
const MaxDays = 3650

// AdvanceDays implements connection.TimeMachine: the linked login's bank moves days forward.
func (p *Provider) AdvanceDays(l connection.Login, days int) ([]byte, string, error) {
	s, err := decodeState(l.State, institution(l))
	if err != nil {
		return nil, "", err
	}
	if s.Phase != phaseLinked {
		return nil, "", fmt.Errorf("sandbox: AdvanceDays on a login that is not linked")
	}
	if days < 1 || s.Day+days > MaxDays {
		return nil, "", apierr.New(apierr.FailedPrecondition, "SANDBOX_END_OF_TIME",
			fmt.Sprintf("the sandbox's banks run for %d days; this one is at day %d", MaxDays, s.Day))
	}
	s.Day += days
	anchor, err := time.Parse(time.DateOnly, sandboxdata.AnchorDate)
	if err != nil {
		return nil, "", err
	}
	return s.encode(), anchor.AddDate(0, 0, s.Day).Format(time.DateOnly), nil
}

// AuthorizeURL is the hosted consent page of REDIRECT institutions when none is configured: it
// does not exist, and tests call the callback themselves with result=approve or result=deny.
const AuthorizeURL = "https://sandbox.puente.dev/authorize"

// WithAuthorizeURL sets the hosted consent page REDIRECT institutions send the user to (the
// gateway serves one, with approve and deny buttons, at /connect/sandbox/authorize).
func WithAuthorizeURL(u string) Option {
	return func(p *Provider) {
		if u != "" {
			p.authorizeURL = u
		}
	}
}

// Authorize implements connection.Provider: it returns the URL of the hosted consent page, with
// the institution, the state and the callback URL in its query.
func (p *Provider) Authorize(ctx context.Context, l connection.Login, state, callbackURL string) (connection.Redirection, error) {
	if err := ctx.Err(); err != nil {
		return connection.Redirection{}, err
	}
	inst := institution(l)
	if inst.Auth != connection.Redirect {
		return connection.Redirection{}, fmt.Errorf("sandbox: Authorize on institution %q, whose auth is %q, not REDIRECT", inst.ExternalID, inst.Auth)
	}
	if state == "" {
		return connection.Redirection{}, fmt.Errorf("sandbox: Authorize without a state")
	}
	u, err := url.Parse(callbackURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return connection.Redirection{}, fmt.Errorf("sandbox: callback URL %q is not an absolute URL", callbackURL)
	}
	return connection.Redirection{URL: p.authorizeURL +
		"?institution=" + url.QueryEscape(inst.ExternalID) +
		"&state=" + url.QueryEscape(state) +
		"&redirect_uri=" + url.QueryEscape(callbackURL)}, nil
}

// Callback implements connection.Provider: result=approve succeeds, result=deny fails
// REDIRECT_DENIED "access_denied", anything else fails REDIRECT_DENIED "invalid_request".
func (p *Provider) Callback(ctx context.Context, l connection.Login, params map[string]string) (connection.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connection.Outcome{}, err
	}
	inst := institution(l)
	if inst.Auth != connection.Redirect {
		return connection.Outcome{}, fmt.Errorf("sandbox: Callback on institution %q, whose auth is %q, not REDIRECT", inst.ExternalID, inst.Auth)
	}
	if inst.Health == connection.Down {
		return unavailable(), nil
	}
	switch strings.ToLower(strings.TrimSpace(params["result"])) {
	case "approve":
		// No username at a redirect: the connection is whose bank it is.
		return succeeded(inst.ExternalID, l.ConnectionID), nil
	case "deny":
		return failed(connection.RedirectDenied, "access_denied", "access_denied: the user denied the consent"), nil
	default:
		return failed(connection.RedirectDenied, "invalid_request", "invalid_request: the callback has no result=approve or result=deny"), nil
	}
}
