package guiabolso

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
)

func TestEveryErrorTypeHasAKindInEitherSpelling(t *testing.T) {
	for _, tc := range []struct {
		types []string
		kind  upstream.Kind
	}{
		{[]string{"error"}, upstream.Unavailable},
		{[]string{"failedDependency", "failed_dependency"}, upstream.Unavailable},
		{[]string{"badRequest", "bad_request"}, upstream.Rejected},
		{[]string{"badProtocol", "bad_protocol"}, upstream.Rejected},
		{[]string{"unprocessable"}, upstream.Rejected},
		{[]string{"gone"}, upstream.Rejected},
		{[]string{"eventNotFound", "event_not_found"}, upstream.Rejected},
		{[]string{"notFound", "not_found"}, upstream.Rejected},
		{[]string{"unauthorized"}, upstream.Unauthorized},
		{[]string{"forbidden"}, upstream.Unauthorized},
		{[]string{"userDenied", "user_denied"}, upstream.Unauthorized},
		{[]string{"resourceDenied", "resource_denied"}, upstream.Unauthorized},
		{[]string{"expired"}, upstream.Unauthorized},
		{[]string{"somethingNew"}, upstream.Rejected},
	} {
		for _, typ := range tc.types {
			require.Equal(t, tc.kind, KindOf(typ), typ)
		}
	}
}

func eventErr(typ, code string) error {
	ee := &EventError{Event: EventTokensExchange, Type: typ, Code: code}
	return &upstream.Error{Provider: Name, Kind: KindOf(typ), Code: code, Err: ee}
}

func TestAFailedCodeExchangeEndsTheLoginWithAClearReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		reason string
		code   string
		retry  bool
	}{
		{"an expired code", eventErr(TypeExpired, CodeExpiredCode), ReasonLoginRequired, CodeExpiredCode, false},
		{"a used or unknown code", eventErr(TypeUnauthorized, CodeInvalidCode), ReasonLoginRequired, CodeInvalidCode, false},
		{"Puente's API key refused", eventErr(TypeUnauthorized, CodeInvalidCredentials), ReasonInternal, CodeInvalidCredentials, false},
		{"the user denied", eventErr(TypeUserDenied, ""), ReasonRedirectDenied, TypeUserDenied, false},
		{"Guiabolso failed", eventErr(TypeError, ""), ReasonInstitutionUnavailable, TypeError, true},
		{"a bad request", eventErr(TypeBadRequest, CodeMissingParameter), ReasonInstitutionUnavailable, CodeMissingParameter, false},
		{"no answer", &upstream.Error{Kind: upstream.Timeout}, ReasonInstitutionUnavailable, "UPSTREAM_TIMEOUT", true},
		{"a dropped connection", &upstream.Error{Kind: upstream.Unavailable}, ReasonInstitutionUnavailable, "UPSTREAM_UNAVAILABLE", true},
		{"garbage", &upstream.Error{Kind: upstream.BadResponse}, ReasonInstitutionUnavailable, "UPSTREAM_BAD_RESPONSE", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, code, msg, retry := LoginFailure(tc.err)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.retry, retry)
			require.NotEmpty(t, msg)
		})
	}
}

func TestAFailedReadReportsAReason(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		reason    string
		temporary bool
	}{
		{"a refused access token", eventErr(TypeUnauthorized, CodeInvalidToken), ReasonLoginRequired, false},
		{"an expired refresh token", eventErr(TypeExpired, CodeExpiredToken), ReasonLoginRequired, false},
		{"Puente's API key refused", eventErr(TypeUnauthorized, CodeInvalidCredentials), "UPSTREAM_UNAUTHORIZED", false},
		{"Guiabolso failed", eventErr(TypeError, ""), "UPSTREAM_UNAVAILABLE", true},
		{"a user Guiabolso does not know", eventErr(TypeNotFound, ""), "UPSTREAM_REJECTED", false},
		{"no answer", &upstream.Error{Kind: upstream.Timeout}, "UPSTREAM_TIMEOUT", true},
		{"garbage", &upstream.Error{Kind: upstream.BadResponse}, "UPSTREAM_BAD_RESPONSE", false},
		{"no tokens", ErrNotLinked, ReasonLoginRequired, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, temporary := ExtractionFailure(tc.err)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.temporary, temporary)
		})
	}
}

func TestSyncStatusesAreReadWhateverTheirCase(t *testing.T) {
	for in, want := range map[string]string{"SUCCESS": SyncSuccess, "success": SyncSuccess, " Success ": SyncSuccess, "ERROR": SyncError, "error": SyncError, "": SyncError, "PARTIAL": SyncError} {
		require.Equal(t, want, normalizeSyncStatus(in), in)
	}
}

func TestAmountsInReaisBecomeCentavos(t *testing.T) {
	for in, want := range map[string]int64{"1234.56": 123456, "-12.3": -1230, "0": 0, "": 0, "10": 1000, "0.005": 1, "-0.005": -1, "1e2": 10000} {
		got, err := minorUnits(json.Number(in))
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := minorUnits("abc")
	require.Error(t, err)
}
