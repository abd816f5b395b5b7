package boufin

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Puente's words for a login's status and failure reasons (connection.Status and
// connection.Reason: pkg does not import the service, the words are the same).
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"

	ReasonInvalidCredentials     = "INVALID_CREDENTIALS"
	ReasonInstitutionUnavailable = "INSTITUTION_UNAVAILABLE"
	ReasonLoginRequired          = "LOGIN_REQUIRED"
	ReasonRedirectDenied         = "REDIRECT_DENIED"
	ReasonInternal               = "INTERNAL"
)

// Verdict is where a login stands, in Puente's words, given a consent's status upstream.
type Verdict struct {
	Status string
	Reason string
}

// consentVerdicts maps a consent's status (and, for ERROR, its errorCode) to a login's.
var consentVerdicts = map[string]Verdict{
	ConsentActive:  {Status: StatusSucceeded},
	ConsentPending: {Status: StatusRunning},
	ConsentRevoked: {Status: StatusFailed, Reason: ReasonLoginRequired},
	ConsentExpired: {Status: StatusFailed, Reason: ReasonLoginRequired},
	ConsentError:   {Status: StatusFailed, Reason: ReasonInstitutionUnavailable},
}

// errorVerdicts maps a failed consent's errorCode, or the app's error on the way back.
var errorVerdicts = map[string]Verdict{
	ErrorCodeWrongLogin: {Status: StatusFailed, Reason: ReasonInvalidCredentials},
	"error":             {Status: StatusFailed, Reason: ReasonInstitutionUnavailable},
	"cancelled":         {Status: StatusFailed, Reason: ReasonRedirectDenied},
	"closed":            {Status: StatusFailed, Reason: ReasonRedirectDenied},
	"access_denied":     {Status: StatusFailed, Reason: ReasonRedirectDenied},
}

// ConsentVerdict is what a consent's status says of the login. An unknown status is not
// usable: the login fails, INTERNAL, with the status as its upstream code.
func ConsentVerdict(c Consent) Verdict {
	status := strings.ToUpper(strings.TrimSpace(c.Status))
	if status == ConsentError {
		if v, ok := errorVerdicts[strings.ToLower(c.ErrorCode)]; ok {
			return v
		}
	}
	if v, ok := consentVerdicts[status]; ok {
		return v
	}
	return Verdict{Status: StatusFailed, Reason: ReasonInternal}
}

// AppErrorVerdict is what the Connect app's error on the way back says of the login; ok is
// false for an error this table does not know (the consent itself then decides).
func AppErrorVerdict(code string) (Verdict, bool) {
	v, ok := errorVerdicts[strings.ToLower(strings.TrimSpace(code))]
	return v, ok
}

// Usable reports whether a consent's products may be read.
func Usable(status string) bool { return strings.EqualFold(status, ConsentActive) }

// accountTypes maps Boufin's account types to Puente's type and subtype.
var accountTypes = map[string][2]string{
	"cuenta-corriente":    {"DEPOSITORY", "CHECKING"},
	"cuenta-vista":        {"DEPOSITORY", "CHECKING"},
	"cuenta-rut":          {"DEPOSITORY", "CHECKING"},
	"cuenta-ahorro":       {"DEPOSITORY", "SAVINGS"},
	"tarjeta-credito":     {"CREDIT", "CREDIT_CARD"},
	"linea-credito":       {"CREDIT", "LINE_OF_CREDIT"},
	"credito-consumo":     {"LOAN", "CONSUMER"},
	"credito-hipotecario": {"LOAN", "MORTGAGE"},
	"inversion":           {"INVESTMENT", ""},
}

// AccountType maps a Boufin account type to Puente's type and subtype (OTHER when unknown).
func AccountType(t string) (typ, subtype string) {
	if v, ok := accountTypes[strings.ToLower(strings.TrimSpace(t))]; ok {
		return v[0], v[1]
	}
	return "OTHER", ""
}

// MinorUnits converts an amount in a currency's unit to minor units: CLP has none, so 1500 CLP
// is 1500. An amount with more decimals than the currency has, or an unknown currency, is an
// error (a bad response), never rounded.
func MinorUnits(amount json.Number, currency string) (int64, error) {
	exp, ok := currencyExponent[strings.ToUpper(currency)]
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", currency)
	}
	s := strings.TrimSpace(amount.String())
	if s == "" {
		return 0, fmt.Errorf("no amount")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp || whole == "" || strings.ContainsAny(s, "eE") {
		return 0, fmt.Errorf("amount %q does not fit %s", amount, currency)
	}
	frac += strings.Repeat("0", exp-len(frac))
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || v > math.MaxInt64/2 {
		return 0, fmt.Errorf("amount %q is not a number", amount)
	}
	if neg {
		v = -v
	}
	return v, nil
}
