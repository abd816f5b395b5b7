package boufin

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEveryConsentStatusMapsToALoginVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		consent Consent
		want    Verdict
	}{
		{"an active consent is a linked login", Consent{Status: "ACTIVE"}, Verdict{StatusSucceeded, ""}},
		{"statuses compare case-insensitively", Consent{Status: "active"}, Verdict{StatusSucceeded, ""}},
		{"a pending consent is still running", Consent{Status: "PENDING"}, Verdict{StatusRunning, ""}},
		{"a revoked consent needs a new login", Consent{Status: "REVOKED"}, Verdict{StatusFailed, ReasonLoginRequired}},
		{"an expired consent needs a new login", Consent{Status: "EXPIRED"}, Verdict{StatusFailed, ReasonLoginRequired}},
		{"wrong_login is invalid credentials", Consent{Status: "ERROR", ErrorCode: "wrong_login"}, Verdict{StatusFailed, ReasonInvalidCredentials}},
		{"another error is the institution's", Consent{Status: "ERROR", ErrorCode: "error"}, Verdict{StatusFailed, ReasonInstitutionUnavailable}},
		{"an error without a code is the institution's", Consent{Status: "ERROR"}, Verdict{StatusFailed, ReasonInstitutionUnavailable}},
		{"an unknown status is not usable", Consent{Status: "SUSPENDED"}, Verdict{StatusFailed, ReasonInternal}},
		{"no status is not usable", Consent{}, Verdict{StatusFailed, ReasonInternal}},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, ConsentVerdict(tc.consent)) })
	}
}

func TestAppErrorsOnTheWayBack(t *testing.T) {
	for code, want := range map[string]Verdict{
		"wrong_login": {StatusFailed, ReasonInvalidCredentials},
		"WRONG_LOGIN": {StatusFailed, ReasonInvalidCredentials},
		"error":       {StatusFailed, ReasonInstitutionUnavailable},
		"cancelled":   {StatusFailed, ReasonRedirectDenied},
		"closed":      {StatusFailed, ReasonRedirectDenied},
	} {
		got, ok := AppErrorVerdict(code)
		require.True(t, ok, code)
		require.Equal(t, want, got, code)
	}
	_, ok := AppErrorVerdict("something_new")
	require.False(t, ok, "an unknown error leaves the decision to the consent")
}

func TestOnlyActiveConsentsAreUsable(t *testing.T) {
	for _, s := range []string{"PENDING", "REVOKED", "EXPIRED", "ERROR", "", "WHATEVER"} {
		require.False(t, Usable(s), s)
	}
	require.True(t, Usable("ACTIVE"))
}

func TestAccountTypes(t *testing.T) {
	for in, want := range map[string][2]string{
		"cuenta-corriente": {"DEPOSITORY", "CHECKING"}, "cuenta-vista": {"DEPOSITORY", "CHECKING"},
		"cuenta-rut": {"DEPOSITORY", "CHECKING"}, "cuenta-ahorro": {"DEPOSITORY", "SAVINGS"},
		"tarjeta-credito": {"CREDIT", "CREDIT_CARD"}, "linea-credito": {"CREDIT", "LINE_OF_CREDIT"},
		"credito-consumo": {"LOAN", "CONSUMER"}, "credito-hipotecario": {"LOAN", "MORTGAGE"},
		"inversion": {"INVESTMENT", ""}, "cripto": {"OTHER", ""},
	} {
		typ, sub := AccountType(in)
		require.Equal(t, want, [2]string{typ, sub}, in)
	}
}

func TestMinorUnits(t *testing.T) {
	for _, tc := range []struct {
		amount, currency string
		want             int64
		ok               bool
	}{
		{"1500", "CLP", 1500, true},
		{"-25990", "CLP", -25990, true},
		{"1500.00", "CLP", 1500, true},
		{"1500.5", "CLP", 0, false},
		{"12.34", "USD", 1234, true},
		{"-0.5", "USD", -50, true},
		{"12.345", "USD", 0, false},
		{"37000.1234", "CLF", 370001234, true},
		{"1e3", "CLP", 0, false},
		{"10", "XXX", 0, false},
		{"", "CLP", 0, false},
	} {
		got, err := MinorUnits(json.Number(tc.amount), tc.currency)
		if !tc.ok {
			require.Error(t, err, "%s %s", tc.amount, tc.currency)
			continue
		}
		require.NoError(t, err, "%s %s", tc.amount, tc.currency)
		require.Equal(t, tc.want, got, "%s %s", tc.amount, tc.currency)
	}
}

func TestRUTsAndTargets(t *testing.T) {
	require.Equal(t, "11111111-1", NormalizeRUT("11.111.111-1"))
	require.Equal(t, "7654321-K", NormalizeRUT("7.654.321-k"))
	require.Equal(t, "11111111-1", NormalizeRUT("111111111"))
	require.Equal(t, "11111111-1", Target(PersonNatural, "11.111.111-1", ""))
	require.Equal(t, "76086428-5", Target(PersonLegal, "11.111.111-1", "76.086.428-5"))
}
