package syncfy

import "strconv"

// Where a job code leaves a login, in the words of Puente's connection service (its Status and
// Reason values; this package does not import it).
const (
	StatusRunning    = "RUNNING"
	StatusWaitingMFA = "WAITING_MFA"
	StatusSucceeded  = "SUCCEEDED"
	StatusFailed     = "FAILED"

	ReasonInvalidCredentials     = "INVALID_CREDENTIALS"
	ReasonLocked                 = "LOCKED"
	ReasonUserActionRequired     = "USER_ACTION_REQUIRED"
	ReasonMFATimeout             = "MFA_TIMEOUT"
	ReasonMFAFailed              = "MFA_FAILED"
	ReasonInstitutionUnavailable = "INSTITUTION_UNAVAILABLE"
	ReasonLoginRequired          = "LOGIN_REQUIRED"
	ReasonInternal               = "INTERNAL"
)

// Code is what one job status code means.
type Code struct {
	Name    string // Syncfy's name for it
	Status  string // StatusRunning, ...
	Reason  string // when Status is StatusFailed
	Message string // plain words, for the connection's timeline
}

// Codes are every job code Syncfy documents, by number.
var Codes = map[int]Code{
	100: {"Register", StatusRunning, "", "Syncfy registered the login"},
	101: {"Starting", StatusRunning, "", "Syncfy is starting the login"},
	102: {"Running", StatusRunning, "", "logged in; Syncfy is reading the accounts"},
	103: {"TokenReceived", StatusRunning, "", "Syncfy received the two-factor answer"},

	200: {"Finish", StatusSucceeded, "", "the accounts were read"},
	201: {"Pending", StatusSucceeded, "", "the accounts were read; older data keeps arriving in the background"},
	202: {"NoTransactions", StatusSucceeded, "", "the accounts were read; they have no transactions"},
	203: {"PartialTransactions", StatusSucceeded, "", "the accounts were read; some have no transactions"},
	204: {"Incomplete", StatusSucceeded, "", "the accounts were read, but not all of their data"},
	205: {"Pending", StatusSucceeded, "", "the accounts were read; more data is pending"},
	206: {"NoAccounts", StatusSucceeded, "", "logged in; the institution shows no accounts"},

	// 400 appears only in Syncfy's Go sample, as a credentials error.
	400: {"CredentialsError", StatusFailed, ReasonInvalidCredentials, "the institution refused the credentials"},
	401: {"Unauthorized", StatusFailed, ReasonInvalidCredentials, "the username or password is wrong"},
	403: {"Invalidtoken", StatusFailed, ReasonMFAFailed, "the two-factor answer is wrong"},
	405: {"Locked", StatusFailed, ReasonLocked, "the account is locked at the institution"},
	// The user is logged in elsewhere: they must log out of the institution's site, then retry.
	406: {"Conflict", StatusFailed, ReasonUserActionRequired, "the user is already logged in at the institution; log out there and try again"},
	408: {"UserAction", StatusFailed, ReasonUserActionRequired, "the institution asks the user to do something on its site"},
	// The credentials work, at another site of the same organization: the user must pick it.
	409: {"WrongSite", StatusFailed, ReasonUserActionRequired, "the credentials belong to another site of the same institution; choose that one"},
	410: {"WaitingTwofa", StatusWaitingMFA, "", "the institution asks for a second factor"},
	411: {"TwofaTimeout", StatusFailed, ReasonMFATimeout, "the second factor was not given in time"},
	// 413 is listed by the widget's documentation only, without a meaning beyond its name: the
	// login failed without Syncfy blaming the credentials, so the user is asked to log in again.
	413: {"LoginError", StatusFailed, ReasonLoginRequired, "the login at the institution failed; try again"},

	500: {"Error", StatusFailed, ReasonInstitutionUnavailable, "Syncfy could not read the institution"},
	501: {"Unavailable", StatusFailed, ReasonInstitutionUnavailable, "the institution's site is down"},
	504: {"ScriptTimeout", StatusFailed, ReasonInstitutionUnavailable, "the institution took too long to answer Syncfy"},
	509: {"UndergoingMaintenance", StatusFailed, ReasonInstitutionUnavailable, "the institution's site is under maintenance"},
}

// Lookup returns what code means. An undocumented code is read by its class: 1xx still running,
// 2xx done, 4xx the user's to fix, 5xx the institution's; anything else is an internal error.
func Lookup(code int) Code {
	if c, ok := Codes[code]; ok {
		return c
	}
	msg := "Syncfy reported code " + strconv.Itoa(code)
	switch code / 100 {
	case 1:
		return Code{"Unknown", StatusRunning, "", msg}
	case 2:
		return Code{"Unknown", StatusSucceeded, "", msg}
	case 4:
		return Code{"Unknown", StatusFailed, ReasonUserActionRequired, msg}
	case 5:
		return Code{"Unknown", StatusFailed, ReasonInstitutionUnavailable, msg}
	}
	return Code{"Unknown", StatusFailed, ReasonInternal, msg}
}
