package guiabolso

import (
	"errors"
	"strings"

	"puente.dev/pkg/upstream"
)

// KindOf is how an error event's type reads in Puente's terms. Unknown types ("unknown error" in
// the protocol library) are refusals.
func KindOf(errorType string) upstream.Kind {
	switch normalizeType(errorType) {
	case TypeError, TypeFailedDependency:
		return upstream.Unavailable
	case TypeUnauthorized, TypeForbidden, TypeExpired, TypeUserDenied, TypeResourceDenied:
		return upstream.Unauthorized
	default: // badRequest, badProtocol, unprocessable, gone, eventNotFound, notFound, unknown
		return upstream.Rejected
	}
}

// Reasons, as services/connection and services/extraction name them.
const (
	ReasonLoginRequired          = "LOGIN_REQUIRED"
	ReasonRedirectDenied         = "REDIRECT_DENIED"
	ReasonInstitutionUnavailable = "INSTITUTION_UNAVAILABLE"
	ReasonInternal               = "INTERNAL"
	ReasonProductNotSupported    = "PRODUCT_NOT_SUPPORTED"
)

// partnerRefused reports whether Guiabolso refused Puente's own API key, not the user's grant.
func partnerRefused(e *EventError) bool {
	return e.Code == CodeInvalidCredentials
}

// LoginFailure is how a failed code exchange ends a login: the connection's reason, the
// upstream code and a message for the user. retry is true when the failure may pass (the
// code stays valid for an hour), so the login step should be tried again instead.
func LoginFailure(err error) (reason, code, message string, retry bool) {
	if ee, ok := AsEventError(err); ok {
		code = ee.Code
		if code == "" {
			code = ee.Type
		}
		switch {
		case partnerRefused(ee):
			return ReasonInternal, code, "Guiabolso refused Puente's API key", false
		case ee.Type == TypeExpired:
			return ReasonLoginRequired, code, "the Guiabolso authorization code expired: connect again", false
		case ee.Type == TypeUnauthorized, ee.Type == TypeForbidden, ee.Type == TypeNotFound, ee.Type == TypeGone:
			return ReasonLoginRequired, code, "the Guiabolso authorization code is invalid or was already used: connect again", false
		case ee.Type == TypeUserDenied, ee.Type == TypeResourceDenied:
			return ReasonRedirectDenied, code, "the user did not share their data on Guiabolso Connect", false
		case KindOf(ee.Type) == upstream.Unavailable:
			return ReasonInstitutionUnavailable, code, "Guiabolso could not complete the authorization", true
		default:
			return ReasonInstitutionUnavailable, code, "Guiabolso refused the authorization code exchange", false
		}
	}
	if ue, ok := upstream.AsError(err); ok {
		if ue.Temporary() {
			return ReasonInstitutionUnavailable, string(ue.Kind), "Guiabolso did not answer", true
		}
		return ReasonInstitutionUnavailable, string(ue.Kind), "Guiabolso answered something Puente cannot read", false
	}
	return ReasonInternal, "", "the Guiabolso authorization could not be completed", false
}

// ExtractionFailure is the reason an extraction reports for err, and whether a retry may help.
func ExtractionFailure(err error) (reason string, temporary bool) {
	if ee, ok := AsEventError(err); ok {
		switch {
		case partnerRefused(ee):
			return string(upstream.Unauthorized), false
		case KindOf(ee.Type) == upstream.Unauthorized:
			// The user's access or refresh token was refused or expired: link again.
			return ReasonLoginRequired, false
		case KindOf(ee.Type) == upstream.Unavailable:
			return string(upstream.Unavailable), true
		default:
			return string(upstream.Rejected), false
		}
	}
	if ue, ok := upstream.AsError(err); ok {
		return string(ue.Kind), ue.Temporary()
	}
	if errors.Is(err, ErrNotLinked) {
		return ReasonLoginRequired, false
	}
	return ReasonInternal, false
}

// Sync statuses of a finished account (result.status).
const (
	SyncSuccess = "SUCCESS"
	SyncError   = "ERROR"
)

// normalizeSyncStatus upper-cases a result status; anything but SUCCESS counts as ERROR.
func normalizeSyncStatus(s string) string {
	if strings.EqualFold(strings.TrimSpace(s), SyncSuccess) {
		return SyncSuccess
	}
	return SyncError
}
