package klavi_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream/klavi"
)

func TestEveryConsentStatusMapsToALoginState(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   klavi.LoginState
	}{
		{"STARTED", klavi.LoginState{Status: klavi.StatusRunning}},
		{"AWAITING_AUTHORISATION", klavi.LoginState{Status: klavi.StatusRunning}},
		{"AWAITING_LGPD_AUTHORISATION", klavi.LoginState{Status: klavi.StatusRunning}},
		{"AUTHORISED", klavi.LoginState{Status: klavi.StatusSucceeded}},
		{"authorised", klavi.LoginState{Status: klavi.StatusSucceeded}},
		{"REJECTED", klavi.LoginState{Status: klavi.StatusFailed, Reason: klavi.ReasonRedirectDenied}},
		{"EXPIRED", klavi.LoginState{Status: klavi.StatusFailed, Reason: klavi.ReasonUserActionRequired}},
		{"REVOKED", klavi.LoginState{Status: klavi.StatusFailed, Reason: klavi.ReasonRedirectDenied}},
		{"deleted_by_user", klavi.LoginState{Status: klavi.StatusFailed, Reason: klavi.ReasonRedirectDenied}},
		{"ERROR", klavi.LoginState{Status: klavi.StatusFailed, Reason: klavi.ReasonInstitutionUnavailable}},
	} {
		t.Run(tc.status+" is "+tc.want.Status, func(t *testing.T) {
			got, ok := klavi.ConsentLoginState(tc.status)
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}
	_, ok := klavi.ConsentLoginState("PAUSED")
	require.False(t, ok, "an undocumented status is not guessed at")
	require.Len(t, klavi.ConsentStatuses, 9, "every documented status is in the table")
}

func TestEveryBusinessErrorHasAReason(t *testing.T) {
	for code := 4001; code <= 4009; code++ {
		b, ok := klavi.BusinessErrors[itoa(code)]
		require.True(t, ok, "statusCode %d is mapped", code)
		require.NotEmpty(t, b.Reason)
	}
	require.True(t, klavi.BusinessErrors["4004"].Temporary, "an institution outage passes")
	require.False(t, klavi.BusinessErrors["4001"].Temporary, "a missing authorisation needs the user")
	require.Equal(t, klavi.ReasonLoginRequired, klavi.BusinessErrors["4008"].Reason)
}

func itoa(n int) string {
	return string(rune('0'+n/1000)) + string(rune('0'+n/100%10)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func TestAmountsBecomeCentavosRoundingHalfAwayFromZero(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1000.0400", 100004},
		{"0.0050", 1},
		{"0.0049", 0},
		{"-0.0050", -1},
		{"-12.3456", -1235},
		{"12", 1200},
		{"7.5", 750},
		{".99", 99},
	} {
		got, err := klavi.MinorUnits(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for _, in := range []string{"", "abc", "1,00", "1.2.3", "-", "1e5"} {
		_, err := klavi.MinorUnits(in)
		require.Error(t, err, in)
	}
}

func TestReportsKnowWhetherTheyAreUsable(t *testing.T) {
	require.True(t, klavi.ReportUsable(200))
	require.True(t, klavi.ReportUsable(204), "some bank APIs were down: the rest is data")
	require.False(t, klavi.ReportUsable(5001))
}

func TestWebhookBodiesAreTellApart(t *testing.T) {
	require.True(t, klavi.IsReport([]byte(` {"code":200}`)))
	require.False(t, klavi.IsReport([]byte(`[{"eventId":"e1"}]`)))
	evs, err := klavi.ParseEvents([]byte(`[{"eventId":"e1","eventName":"consent_authorised","payload":{"consents":{"consentId":"c","externalTrackId":"con_1"}}}]`))
	require.NoError(t, err)
	require.Equal(t, "con_1", evs[0].Payload.Consents.ExternalTrackID)
}
