package powens

import (
	"strings"

	"puente.dev/pkg/upstream"
)

// Puente's words, as the connection and extraction services spell them (pkg imports no service).
const (
	StatusRunning    = "RUNNING"
	StatusWaitingMFA = "WAITING_MFA"
	StatusSucceeded  = "SUCCEEDED"
	StatusFailed     = "FAILED"

	ReasonInvalidCredentials     = "INVALID_CREDENTIALS"
	ReasonLocked                 = "LOCKED"
	ReasonUserActionRequired     = "USER_ACTION_REQUIRED"
	ReasonMFATimeout             = "MFA_TIMEOUT"
	ReasonInstitutionUnavailable = "INSTITUTION_UNAVAILABLE"
	ReasonLoginRequired          = "LOGIN_REQUIRED"
	ReasonRedirectDenied         = "REDIRECT_DENIED"
	ReasonInternal               = "INTERNAL"
)

// Verdict is what a connection state or an error code means for a login in progress
// (Status, Reason) and for a data pull (Extraction, Temporary).
type Verdict struct {
	Status     string
	Reason     string // when Status is FAILED
	Extraction string // the extraction ProviderError reason
	Temporary  bool
}

// States maps every ConnectionState [SPEC] ("" is null: the sync went well).
var States = map[string]Verdict{
	"": {Status: StatusSucceeded},
	// The user must answer the connection's fields (an OTP): a challenge round.
	"additionalInformationNeeded": {Status: StatusWaitingMFA, Extraction: ReasonLoginRequired},
	// The user validates in the bank's app; POST {"resume":"true"} and poll.
	"decoupled": {Status: StatusRunning, Extraction: ReasonLoginRequired},
	// Powens is still working.
	"validating": {Status: StatusRunning, Extraction: ReasonInstitutionUnavailable, Temporary: true},
	// SCA or bank OAuth is needed, which only a new (webauth) login can give: the user logs in again.
	"SCARequired":     {Status: StatusFailed, Reason: ReasonLoginRequired, Extraction: ReasonLoginRequired},
	"webauthRequired": {Status: StatusFailed, Reason: ReasonLoginRequired, Extraction: ReasonLoginRequired},
	// The user must act on the bank's website (accept terms, change the password).
	"actionNeeded":    {Status: StatusFailed, Reason: ReasonUserActionRequired, Extraction: ReasonLoginRequired},
	"passwordExpired": {Status: StatusFailed, Reason: ReasonUserActionRequired, Extraction: ReasonLoginRequired},
	"wrongpass":       {Status: StatusFailed, Reason: ReasonInvalidCredentials, Extraction: ReasonLoginRequired},
	// The bank throttles or is down: try later.
	"rateLimiting":       {Status: StatusFailed, Reason: ReasonInstitutionUnavailable, Extraction: ReasonInstitutionUnavailable, Temporary: true},
	"websiteUnavailable": {Status: StatusFailed, Reason: ReasonInstitutionUnavailable, Extraction: ReasonInstitutionUnavailable, Temporary: true},
	"bug":                {Status: StatusFailed, Reason: ReasonInternal, Extraction: ReasonInstitutionUnavailable, Temporary: true},
}

// ServiceErrors maps every ServiceErrorCode [SPEC].
var ServiceErrors = map[string]Verdict{
	"noAccount":          {Status: StatusFailed, Reason: ReasonUserActionRequired, Extraction: ""}, // an empty list, for a data pull
	"wrongpass":          {Status: StatusFailed, Reason: ReasonInvalidCredentials, Extraction: ReasonLoginRequired},
	"websiteUnavailable": {Status: StatusFailed, Reason: ReasonInstitutionUnavailable, Extraction: ReasonInstitutionUnavailable, Temporary: true},
	"tooManySync":        {Status: StatusFailed, Reason: ReasonInstitutionUnavailable, Extraction: string(upstream.RateLimited), Temporary: true},
	"connectionLocked":   {Status: StatusFailed, Reason: ReasonLocked, Extraction: ReasonLoginRequired},
	"bankMessage":        {Status: StatusFailed, Reason: ReasonUserActionRequired, Extraction: ReasonLoginRequired},
	"actionNeeded":       {Status: StatusFailed, Reason: ReasonUserActionRequired, Extraction: ReasonLoginRequired},
	"bug":                {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Unavailable), Temporary: true},
	"notSupported":       {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Rejected)},
	"config":             {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Rejected)},
	"keymanager":         {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Unavailable), Temporary: true},
	"dataError":          {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Rejected)},
	"forbidden":          {Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Unauthorized)},
}

// ForState is the verdict on a connection state; a state Powens does not document fails the
// login as INTERNAL rather than being guessed at.
func ForState(state string) Verdict {
	if v, ok := States[state]; ok {
		return v
	}
	for k, v := range States { // case drift
		if strings.EqualFold(k, state) {
			return v
		}
	}
	return Verdict{Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.BadResponse)}
}

// ForError is the verdict on a failed call: by the ServiceError code when there is one, by the
// kind of failure otherwise. The 401 of a user token is LOGIN_REQUIRED for a data pull.
func ForError(err error) Verdict {
	e, ok := upstream.AsError(err)
	if !ok {
		return Verdict{Status: StatusFailed, Reason: ReasonInternal, Extraction: ReasonInternal}
	}
	if e.Status == 401 {
		// A user token that expired or was revoked: the user must log in again. (Puente's own
		// client credentials are refused with 401 too, at /auth/token/access; the adapter tells
		// that apart.)
		return Verdict{Status: StatusFailed, Reason: ReasonLoginRequired, Extraction: ReasonLoginRequired}
	}
	if v, ok := ServiceErrors[e.Code]; ok && e.Code != "" {
		return v
	}
	switch e.Kind {
	case upstream.Unavailable, upstream.Timeout, upstream.RateLimited:
		return Verdict{Status: StatusFailed, Reason: ReasonInstitutionUnavailable, Extraction: string(e.Kind), Temporary: true}
	case upstream.Unauthorized: // 403: Puente's domain may not do this
		return Verdict{Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.Unauthorized)}
	case upstream.BadResponse:
		return Verdict{Status: StatusFailed, Reason: ReasonInternal, Extraction: string(upstream.BadResponse)}
	}
	return Verdict{Status: StatusFailed, Reason: ReasonInternal, Extraction: string(e.Kind)}
}
