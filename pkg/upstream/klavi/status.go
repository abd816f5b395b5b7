package klavi

import (
	"fmt"
	"strconv"
	"strings"
)

// Puente's words for where a login stands and why it failed (the connection service's Status and
// Reason values, which this package cannot import).
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"

	ReasonRedirectDenied         = "REDIRECT_DENIED"
	ReasonUserActionRequired     = "USER_ACTION_REQUIRED"
	ReasonInstitutionUnavailable = "INSTITUTION_UNAVAILABLE"
	ReasonLoginRequired          = "LOGIN_REQUIRED"
	ReasonInvalidCredentials     = "INVALID_CREDENTIALS"
)

// LoginState is what a consent status means for a login in progress.
type LoginState struct {
	Status string
	Reason string
}

// ConsentStatuses maps every documented consent status (upper-case) to a login's state.
var ConsentStatuses = map[string]LoginState{
	"STARTED":                     {StatusRunning, ""},
	"AWAITING_AUTHORISATION":      {StatusRunning, ""},
	"AWAITING_LGPD_AUTHORISATION": {StatusRunning, ""},
	"AUTHORISED":                  {StatusSucceeded, ""},
	// The user said no at the bank, or did not finish within 60 minutes.
	"REJECTED": {StatusFailed, ReasonRedirectDenied},
	// Inactive timeout: the user left the journey unfinished.
	"EXPIRED": {StatusFailed, ReasonUserActionRequired},
	// Revoked or deleted by the user from another channel while linking.
	"REVOKED":         {StatusFailed, ReasonRedirectDenied},
	"DELETED_BY_USER": {StatusFailed, ReasonRedirectDenied},
	// Klavi or the institution failed the journey.
	"ERROR": {StatusFailed, ReasonInstitutionUnavailable},
}

// NormStatus is a consent status in upper case (Klavi's examples use both casings).
func NormStatus(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }

// ConsentLoginState maps a consent status, in either case, to a login's state; ok is false for a
// status Klavi does not document.
func ConsentLoginState(status string) (LoginState, bool) {
	s, ok := ConsentStatuses[NormStatus(status)]
	return s, ok
}

// Business is what one of Klavi's business errors (HTTP 416, statusCode 4001–4009) means.
type Business struct {
	// Reason is the extraction reason reported for it.
	Reason string
	// Temporary: the same request may succeed later.
	Temporary bool
	Message   string
}

// BusinessErrors maps every documented business statusCode.
var BusinessErrors = map[string]Business{
	"4001": {ReasonLoginRequired, false, "invalid authorisation information"},
	"4002": {"PRODUCT_NOT_CONSENTED", false, "invalid product information"},
	"4003": {"UPSTREAM_REJECTED", false, "consents exceed the limit"},
	"4004": {ReasonInstitutionUnavailable, true, "invalid institution (outage or no permission)"},
	"4005": {"UPSTREAM_REJECTED", false, "products empty"},
	"4006": {"UPSTREAM_REJECTED", false, "invalid productsCallbackURL"},
	"4007": {"UPSTREAM_UNAVAILABLE", true, "product request failed"},
	"4008": {ReasonLoginRequired, false, "no Open Finance consent"},
	"4009": {ReasonUserActionRequired, false, "KYC needed"},
}

// ReportCodes maps a report's code to whether its data may be used: 200 OK, 204 some bank APIs
// were unavailable (partial but usable); anything else is a failed report.
func ReportUsable(code int) bool { return code == 200 || code == 204 || code == 205 }

// MinorUnits turns one of Klavi's decimal amount strings ("1000.0400", "-12.345") into minor
// units (centavos), rounding half away from zero.
func MinorUnits(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || !digits(whole) || !digits(frac) || len(whole) > 15 {
		return 0, fmt.Errorf("klavi: amount %q is not a decimal", s)
	}
	var w int64
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil {
			return 0, fmt.Errorf("klavi: amount out of range")
		}
	}
	frac += "000"
	cents, _ := strconv.ParseInt(frac[:2], 10, 64)
	n := w*100 + cents
	if frac[2] >= '5' {
		n++
	}
	if neg {
		n = -n
	}
	return n, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
