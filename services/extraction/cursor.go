package extraction

import (
	"encoding/base64"
	"strconv"
	"strings"

	"puente.dev/pkg/apierr"
)

// A cursor of SyncTransactions is the consent's change number the caller has seen, with the
// consent's id so that one consent's cursor is not taken for another's. Change numbers only
// grow, and a re-extraction numbers only what it changed, so a cursor stays valid for the life
// of the consent's data.

const cursorPrefix = "c1."

func encodeCursor(consentID string, version int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + consentID + "." + strconv.FormatInt(version, 10)))
}

var errBadCursor = apierr.Invalid("cursor", "is not a cursor of this consent's transactions")

func decodeCursor(consentID, cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, errBadCursor
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix+consentID+".")
	if !ok {
		return 0, errBadCursor
	}
	v, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || v < 0 {
		return 0, errBadCursor
	}
	return v, nil
}

// A page token of ListTransactions is the (booking date, id) of the last transaction of the
// page: keyset pagination in the list's order, so pages neither skip nor repeat a transaction
// when others are added meanwhile.

func encodeTransactionPage(t Transaction) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.BookingDate + "." + t.ID))
}

func decodeTransactionPage(token string, size int32) (TransactionPage, error) {
	p := TransactionPage{Limit: int(size)}
	if p.Limit == 0 {
		p.Limit = DefaultPageSize
	}
	if token == "" {
		return p, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	date, id, ok := strings.Cut(string(raw), ".")
	if err != nil || !ok || len(date) != len("2006-01-02") || !strings.HasPrefix(id, "txn_") {
		return p, apierr.Invalid("page_token", "is not a page token of this list")
	}
	p.BookingDate, p.ID = date, id
	return p, nil
}

// DefaultPageSize is a page's size when the request gives none.
const DefaultPageSize = 100
