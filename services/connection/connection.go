// Package connection owns the institution catalog and the connections users make to
// institutions: credentials (encrypted), two-factor challenges, redirects, and the status
// timeline of every login. Each upstream provider plugs in through the Provider interface.
package connection

import (
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/page"
)

// AuthMechanism is how a user proves who they are to an institution.
type AuthMechanism string

const (
	Credentials AuthMechanism = "CREDENTIALS"
	Redirect    AuthMechanism = "REDIRECT"
)

// FieldType is the kind of input a credential field is.
type FieldType string

const (
	Text     FieldType = "TEXT"
	Password FieldType = "PASSWORD"
	Select   FieldType = "SELECT"
)

// Health is an institution's state as its provider reports it.
type Health string

const (
	Operational Health = "OPERATIONAL"
	Degraded    Health = "DEGRADED"
	Down        Health = "DOWN"
)

// Option is one choice of a SELECT field or of a challenge.
type Option struct {
	Value string `json:"value"`
	Label string `json:"label"`
	Image string `json:"image,omitempty"` // base64 PNG, challenges only
}

// CredentialField is one input of an institution's login form.
type CredentialField struct {
	Name        string    `json:"name"`
	Type        FieldType `json:"type"`
	Label       string    `json:"label"`
	Description string    `json:"description,omitempty"`
	Required    bool      `json:"required"`
	IsUsername  bool      `json:"is_username,omitempty"`
	IsToken     bool      `json:"is_token,omitempty"`
	Validation  string    `json:"validation,omitempty"` // RE2
	Options     []Option  `json:"options,omitempty"`
}

// Institution is what a user connects to. ExternalID is the provider's own id for it; ID is ours,
// stable across catalog syncs.
type Institution struct {
	ID               string
	Provider         string
	ExternalID       string
	OrganizationID   string
	OrganizationName string
	Name             string
	Country          string
	Personal         bool
	Business         bool
	Products         []string
	Auth             AuthMechanism
	Fields           []CredentialField
	Sources          []string
	LogoURL          string
	Health           Health
}

// Status is where a connection is in its login.
type Status string

const (
	Pending         Status = "PENDING"
	Starting        Status = "STARTING"
	Running         Status = "RUNNING"
	WaitingMFA      Status = "WAITING_MFA"
	WaitingRedirect Status = "WAITING_REDIRECT"
	Succeeded       Status = "SUCCEEDED"
	Failed          Status = "FAILED"
)

// Final reports whether no further step follows s.
func (s Status) Final() bool { return s == Succeeded || s == Failed }

// Reason says why a connection failed.
type Reason string

const (
	NoReason               Reason = ""
	InvalidCredentials     Reason = "INVALID_CREDENTIALS"
	Locked                 Reason = "LOCKED"
	UserActionRequired     Reason = "USER_ACTION_REQUIRED"
	MFATimeout             Reason = "MFA_TIMEOUT"
	MFAFailed              Reason = "MFA_FAILED"
	InstitutionUnavailable Reason = "INSTITUTION_UNAVAILABLE"
	LoginRequired          Reason = "LOGIN_REQUIRED"
	RedirectDenied         Reason = "REDIRECT_DENIED"
	Internal               Reason = "INTERNAL"
)

// ChallengeFieldType is the kind of answer a challenge field wants.
type ChallengeFieldType string

const (
	ChallengeText     ChallengeFieldType = "TEXT"
	ChallengePassword ChallengeFieldType = "PASSWORD"
	ChallengeOptions  ChallengeFieldType = "OPTIONS"
)

// ChallengeField is one question of a challenge.
type ChallengeField struct {
	Name    string             `json:"name"`
	Type    ChallengeFieldType `json:"type"`
	Label   string             `json:"label"`
	Options []Option           `json:"options,omitempty"`
}

// Challenge is a two-factor round the user must answer before ExpiresAt.
type Challenge struct {
	ID        string           `json:"id"`
	Round     int              `json:"round"`
	Fields    []ChallengeField `json:"fields"`
	Image     string           `json:"image,omitempty"` // base64 PNG: a captcha or QR code
	ExpiresAt time.Time        `json:"expires_at"`
	// AccountSelection: the fields ask which accounts to share, not who the user is.
	AccountSelection bool `json:"account_selection,omitempty"`
}

// Connection is a user's link to an institution.
type Connection struct {
	ID               string
	ClientID         string
	UserID           string
	InstitutionID    string
	Provider         string
	Status           Status
	Reason           Reason
	UpstreamCode     string
	Challenge        *Challenge
	AuthorizationURL string
	UsernameHint     string
	ConsentID        string // a consent this connection authorises when it succeeds
	RedirectURI      string // where the user's browser goes back to after a redirect
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Step is one entry of a connection's timeline.
type Step struct {
	Status       Status
	Reason       Reason
	UpstreamCode string
	Message      string
	At           time.Time
}

var (
	ErrInstitutionNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "institution not found")
	ErrConnectionNotFound  = apierr.New(apierr.NotFound, "NOT_FOUND", "connection not found")
	ErrNotWaitingMFA       = apierr.New(apierr.FailedPrecondition, "NOT_WAITING_MFA", "the connection is not waiting for a two-factor answer")
	ErrStaleChallenge      = apierr.Invalid("challenge_id", "is not the challenge the connection is waiting on")
	ErrNotFinal            = apierr.New(apierr.FailedPrecondition, "LOGIN_IN_PROGRESS", "the connection's login is still in progress")
	ErrRedirectState       = apierr.New(apierr.FailedPrecondition, "REDIRECT_STATE_INVALID", "the redirect state is invalid or was already used")
)

// Page is where a list resumes (keyset pagination by id).
type Page = page.Page

// InstitutionFilter narrows the catalog.
type InstitutionFilter struct {
	Country  string
	Product  string
	Query    string
	Personal bool
	Business bool
	// Products, when set, keeps institutions offering at least one of them (a widget session's).
	Products []string
}

// Secrets are a connection's sealed values, as stored.
type Secrets struct {
	Credentials   []byte
	ProviderState []byte
	Answers       []byte // two-factor answers, or a redirect's callback parameters, waiting for a job
	RedirectState []byte // keyed hash of a redirect's single-use state
	Round         int
}

// Job is background work a change asks for, run at RunAt (now when zero).
type Job struct {
	Kind        string
	ChallengeID string
	RunAt       time.Time
	Args        map[string]string // more arguments, beside the connection id
	// MaxAttempts bounds retries (5 when zero): a login step is retried briefly, a settlement
	// or a timeout for many hours.
	MaxAttempts int
	UniqueKey   string
}

// Change is what an update did: the timeline step to record (nil: nothing visible changed, no
// step and no event) and the jobs to enqueue with it.
type Change struct {
	Step *Step
	// StepIfNew records Step only if the timeline's last step differs from it in status,
	// upstream code or message: a poll that reports the same progress again adds nothing.
	StepIfNew bool
	Jobs      []Job
	// Refs, when not nil, become the connection's upstream references (see Referencer).
	Refs []string
}
