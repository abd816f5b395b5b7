package syncfy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/upstream/syncfy"
)

// TestEveryDocumentedCodeMapsToAStatusAndReason walks every job code Syncfy documents.
func TestEveryDocumentedCodeMapsToAStatusAndReason(t *testing.T) {
	for _, tc := range []struct {
		code   int
		name   string
		status string
		reason string
	}{
		{100, "Register", syncfy.StatusRunning, ""},
		{101, "Starting", syncfy.StatusRunning, ""},
		{102, "Running", syncfy.StatusRunning, ""},
		{103, "TokenReceived", syncfy.StatusRunning, ""},
		{200, "Finish", syncfy.StatusSucceeded, ""},
		{201, "Pending", syncfy.StatusSucceeded, ""},
		{202, "NoTransactions", syncfy.StatusSucceeded, ""},
		{203, "PartialTransactions", syncfy.StatusSucceeded, ""},
		{204, "Incomplete", syncfy.StatusSucceeded, ""},
		{205, "Pending", syncfy.StatusSucceeded, ""},
		{206, "NoAccounts", syncfy.StatusSucceeded, ""},
		{400, "CredentialsError", syncfy.StatusFailed, syncfy.ReasonInvalidCredentials},
		{401, "Unauthorized", syncfy.StatusFailed, syncfy.ReasonInvalidCredentials},
		{403, "Invalidtoken", syncfy.StatusFailed, syncfy.ReasonMFAFailed},
		{405, "Locked", syncfy.StatusFailed, syncfy.ReasonLocked},
		{406, "Conflict", syncfy.StatusFailed, syncfy.ReasonUserActionRequired},
		{408, "UserAction", syncfy.StatusFailed, syncfy.ReasonUserActionRequired},
		{409, "WrongSite", syncfy.StatusFailed, syncfy.ReasonUserActionRequired},
		{410, "WaitingTwofa", syncfy.StatusWaitingMFA, ""},
		{411, "TwofaTimeout", syncfy.StatusFailed, syncfy.ReasonMFATimeout},
		{413, "LoginError", syncfy.StatusFailed, syncfy.ReasonLoginRequired},
		{500, "Error", syncfy.StatusFailed, syncfy.ReasonInstitutionUnavailable},
		{501, "Unavailable", syncfy.StatusFailed, syncfy.ReasonInstitutionUnavailable},
		{504, "ScriptTimeout", syncfy.StatusFailed, syncfy.ReasonInstitutionUnavailable},
		{509, "UndergoingMaintenance", syncfy.StatusFailed, syncfy.ReasonInstitutionUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := syncfy.Lookup(tc.code)
			require.Equal(t, tc.name, got.Name)
			require.Equal(t, tc.status, got.Status)
			require.Equal(t, tc.reason, got.Reason)
			require.NotEmpty(t, got.Message, "every code reads as plain words on the timeline")
		})
	}
	require.Len(t, syncfy.Codes, 25, "a documented code was added to the table without a test")
}

func TestUndocumentedCodesAreReadByTheirClass(t *testing.T) {
	for code, want := range map[int][2]string{
		104: {syncfy.StatusRunning, ""},
		207: {syncfy.StatusSucceeded, ""},
		499: {syncfy.StatusFailed, syncfy.ReasonUserActionRequired},
		502: {syncfy.StatusFailed, syncfy.ReasonInstitutionUnavailable},
		0:   {syncfy.StatusFailed, syncfy.ReasonInternal},
		999: {syncfy.StatusFailed, syncfy.ReasonInternal},
	} {
		got := syncfy.Lookup(code)
		require.Equal(t, want[0], got.Status, "code %d", code)
		require.Equal(t, want[1], got.Reason, "code %d", code)
		require.Contains(t, got.Message, "code")
	}
}

func TestAmountsBecomeMinorUnitsWithoutFloatError(t *testing.T) {
	for _, tc := range []struct {
		amount   float64
		currency string
		want     int64
	}{
		{0.29, "MXN", 29},
		{-0.29, "MXN", -29},
		{1.005, "MXN", 101}, // written 1.005, a float of 1.00499…: the half cent rounds away from zero
		{15234.57, "MXN", 1523457},
		{-3210.29, "mxn", -321029},
		{19.99, "USD", 1999},
		{1500, "CLP", 1500},
		{0, "MXN", 0},
	} {
		require.Equal(t, tc.want, syncfy.MinorUnits(tc.amount, tc.currency), "%v %s", tc.amount, tc.currency)
	}
}

func TestImagesLoseTheirDataURLPrefix(t *testing.T) {
	require.Equal(t, "iVBORw0KGgo=", syncfy.ImageBase64("data:image/png;base64,iVBORw0KGgo="))
	require.Equal(t, "iVBORw0KGgo=", syncfy.ImageBase64("iVBORw0KGgo="))
	require.Empty(t, syncfy.ImageBase64(""))
}
