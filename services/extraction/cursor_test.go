package extraction

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/apierr"
)

// requireInvalidField asserts err is an InvalidArgument naming field.
func requireInvalidField(t *testing.T, err error, field string) {
	t.Helper()
	var ae *apierr.Error
	require.True(t, errors.As(err, &ae), "want an *apierr.Error, got %v", err)
	require.Equal(t, apierr.InvalidArgument, ae.Kind)
	require.NotEmpty(t, ae.Fields)
	require.Equal(t, field, ae.Fields[0].Field)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	const consent = "cns_01JD0000000000000000000000"
	for _, v := range []syncCursor{{}, {Origin: 1, Position: 1}, {Origin: 42, Position: 42}, {Origin: 1 << 40, Position: 1 << 40},
		{Origin: 3, Position: 10, End: 20}, {Origin: 0, Position: 0, End: 1}} {
		c := encodeCursor(consent, v)
		got, err := decodeCursor(consent, c)
		require.NoError(t, err)
		require.Equal(t, v, got)
	}
	got, err := decodeCursor(consent, "")
	require.NoError(t, err)
	require.Zero(t, got, "an empty cursor starts from the beginning")
	for name, raw := range map[string]string{
		"a page past its end":         "c1." + consent + ".1.5.5",
		"a position before its start": "c1." + consent + ".4.3.9",
		"two numbers":                 "c1." + consent + ".1.5",
	} {
		_, err := decodeCursor(consent, b64(raw))
		require.Error(t, err, name)
	}
}

func TestCursorOfAnotherConsentIsRefused(t *testing.T) {
	t.Parallel()
	const mine, other = "cns_01JD0000000000000000000000", "cns_01JD0000000000000000000001"
	_, err := decodeCursor(mine, encodeCursor(other, syncCursor{Origin: 7, Position: 7}))
	requireInvalidField(t, err, "cursor")
	// A consent id that merely starts like another's does not pass for it.
	_, err = decodeCursor("cns_01JD", encodeCursor("cns_01JD0", syncCursor{Origin: 7, Position: 7}))
	requireInvalidField(t, err, "cursor")
}

func TestGarbageCursorIsRefused(t *testing.T) {
	t.Parallel()
	const consent = "cns_01JD0000000000000000000000"
	for name, c := range map[string]string{
		"not base64url":                        "not a cursor!",
		"padded base64":                        base64.URLEncoding.EncodeToString([]byte("c1." + consent + ".5")),
		"base64 of something else":             b64("hello"),
		"another version":                      b64("c2." + consent + ".5"),
		"no change number":                     b64("c1." + consent + "."),
		"a change number that is not a number": b64("c1." + consent + ".five"),
		"a negative change number":             b64("c1." + consent + ".-1"),
		"a change number too big":              b64("c1." + consent + ".99999999999999999999"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeCursor(consent, c)
			requireInvalidField(t, err, "cursor")
		})
	}
}

func TestTransactionPageTokenRoundTrip(t *testing.T) {
	t.Parallel()
	last := Transaction{ID: "txn_01JD0000000000000000000000", UpstreamTransaction: UpstreamTransaction{BookingDate: "2026-01-31"}}
	p, err := decodeTransactionPage(encodeTransactionPage(last), 25)
	require.NoError(t, err)
	require.Equal(t, TransactionPage{BookingDate: "2026-01-31", ID: last.ID, Limit: 25}, p)

	p, err = decodeTransactionPage("", 0)
	require.NoError(t, err)
	require.Equal(t, TransactionPage{Limit: DefaultPageSize}, p, "no token: the first page, of the default size")
}

func TestGarbageTransactionPageTokenIsRefused(t *testing.T) {
	t.Parallel()
	for name, tok := range map[string]string{
		"not base64url":           "%%%",
		"no separator":            b64("2026-01-31txn_01JD0000000000000000000000"),
		"a short date":            b64("2026-1-31.txn_01JD0000000000000000000000"),
		"an id that is no txn id": b64("2026-01-31.acc_01JD0000000000000000000000"),
		"an empty id":             b64("2026-01-31."),
		"a cursor of sync":        encodeCursor("cns_01JD0000000000000000000000", syncCursor{Origin: 3, Position: 3}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeTransactionPage(tok, 10)
			requireInvalidField(t, err, "page_token")
		})
	}
}

// A token whose date has the right length but is no date must be refused here: otherwise it
// reaches the database as `$5::text::date` and fails there as an internal error.
func TestTransactionPageTokenWithANonDateIsRefused(t *testing.T) {
	t.Parallel()
	for name, tok := range map[string]string{
		"letters":         b64("abcdefghij.txn_01JD0000000000000000000000"),
		"month 13":        b64("2026-13-01.txn_01JD0000000000000000000000"),
		"the 30th of Feb": b64("2026-02-30.txn_01JD0000000000000000000000"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeTransactionPage(tok, 10)
			requireInvalidField(t, err, "page_token")
		})
	}
}
