package powens_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream"
	"puente.dev/pkg/upstream/powens"
)

func TestEveryConnectionStateHasAVerdict(t *testing.T) {
	for _, tc := range []struct {
		state, status, reason, extraction string
		temporary                         bool
	}{
		{"", powens.StatusSucceeded, "", "", false},
		{"additionalInformationNeeded", powens.StatusWaitingMFA, "", powens.ReasonLoginRequired, false},
		{"decoupled", powens.StatusRunning, "", powens.ReasonLoginRequired, false},
		{"validating", powens.StatusRunning, "", powens.ReasonInstitutionUnavailable, true},
		{"SCARequired", powens.StatusFailed, powens.ReasonLoginRequired, powens.ReasonLoginRequired, false},
		{"webauthRequired", powens.StatusFailed, powens.ReasonLoginRequired, powens.ReasonLoginRequired, false},
		{"actionNeeded", powens.StatusFailed, powens.ReasonUserActionRequired, powens.ReasonLoginRequired, false},
		{"passwordExpired", powens.StatusFailed, powens.ReasonUserActionRequired, powens.ReasonLoginRequired, false},
		{"wrongpass", powens.StatusFailed, powens.ReasonInvalidCredentials, powens.ReasonLoginRequired, false},
		{"rateLimiting", powens.StatusFailed, powens.ReasonInstitutionUnavailable, powens.ReasonInstitutionUnavailable, true},
		{"websiteUnavailable", powens.StatusFailed, powens.ReasonInstitutionUnavailable, powens.ReasonInstitutionUnavailable, true},
		{"bug", powens.StatusFailed, powens.ReasonInternal, powens.ReasonInstitutionUnavailable, true},
		{"somethingNew", powens.StatusFailed, powens.ReasonInternal, string(upstream.BadResponse), false},
	} {
		t.Run("state "+tc.state, func(t *testing.T) {
			v := powens.ForState(tc.state)
			require.Equal(t, powens.Verdict{Status: tc.status, Reason: tc.reason, Extraction: tc.extraction, Temporary: tc.temporary}, v)
		})
	}
	require.Len(t, powens.States, 12, "the eleven documented states and null")
	require.Equal(t, powens.StatusWaitingMFA, powens.ForState("ADDITIONALINFORMATIONNEEDED").Status, "case drift is tolerated")
}

func TestEveryServiceErrorCodeHasAVerdict(t *testing.T) {
	for _, tc := range []struct {
		code, reason, extraction string
		temporary                bool
	}{
		{"noAccount", powens.ReasonUserActionRequired, "", false},
		{"wrongpass", powens.ReasonInvalidCredentials, powens.ReasonLoginRequired, false},
		{"websiteUnavailable", powens.ReasonInstitutionUnavailable, powens.ReasonInstitutionUnavailable, true},
		{"tooManySync", powens.ReasonInstitutionUnavailable, string(upstream.RateLimited), true},
		{"connectionLocked", powens.ReasonLocked, powens.ReasonLoginRequired, false},
		{"bankMessage", powens.ReasonUserActionRequired, powens.ReasonLoginRequired, false},
		{"actionNeeded", powens.ReasonUserActionRequired, powens.ReasonLoginRequired, false},
		{"bug", powens.ReasonInternal, string(upstream.Unavailable), true},
		{"notSupported", powens.ReasonInternal, string(upstream.Rejected), false},
		{"config", powens.ReasonInternal, string(upstream.Rejected), false},
		{"keymanager", powens.ReasonInternal, string(upstream.Unavailable), true},
		{"dataError", powens.ReasonInternal, string(upstream.Rejected), false},
		{"forbidden", powens.ReasonInternal, string(upstream.Unauthorized), false},
	} {
		t.Run("code "+tc.code, func(t *testing.T) {
			v := powens.ForError(&upstream.Error{Provider: "powens", Kind: upstream.Rejected, Status: http.StatusBadRequest, Code: tc.code})
			require.Equal(t, powens.Verdict{Status: powens.StatusFailed, Reason: tc.reason, Extraction: tc.extraction, Temporary: tc.temporary}, v)
		})
	}
	require.Len(t, powens.ServiceErrors, 13, "every documented ServiceErrorCode")
}

func TestFailuresWithoutACodeAreJudgedByTheirKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *upstream.Error
		want powens.Verdict
	}{
		{"an expired user token", &upstream.Error{Kind: upstream.Unauthorized, Status: 401, Code: "forbidden"},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonLoginRequired, Extraction: powens.ReasonLoginRequired}},
		{"a refused domain", &upstream.Error{Kind: upstream.Unauthorized, Status: 403},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInternal, Extraction: string(upstream.Unauthorized)}},
		{"a timeout", &upstream.Error{Kind: upstream.Timeout},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInstitutionUnavailable, Extraction: string(upstream.Timeout), Temporary: true}},
		{"a dropped connection", &upstream.Error{Kind: upstream.Unavailable},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInstitutionUnavailable, Extraction: string(upstream.Unavailable), Temporary: true}},
		{"a 429", &upstream.Error{Kind: upstream.RateLimited, Status: 429},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInstitutionUnavailable, Extraction: string(upstream.RateLimited), Temporary: true}},
		{"garbage", &upstream.Error{Kind: upstream.BadResponse, Status: 200},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInternal, Extraction: string(upstream.BadResponse)}},
		{"an unknown 4xx", &upstream.Error{Kind: upstream.Rejected, Status: 404, Code: "notFound"},
			powens.Verdict{Status: powens.StatusFailed, Reason: powens.ReasonInternal, Extraction: string(upstream.Rejected)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, powens.ForError(tc.err))
		})
	}
}
