package extraction

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/ids"
)

// A cursor of SyncTransactions says where a client stands in a consent's change numbers. Change
// numbers only grow, and a re-extraction numbers only what it changed, so a cursor stays valid
// for the life of the consent's data. The consent's id is in it, so that one consent's cursor
// is not taken for another's.
//
// A cursor between two pages of one sync also carries the number the sync started from
// (Origin: the client has seen every transaction as it was then) and the last number the sync
// covers (End: the consent's number when it started). A transaction is added if it was created
// after Origin, whatever page it comes in; and if the data changes while the client pages, the
// next page is refused, as Plaid does, so that the client starts again from Origin rather than
// miss or misfile a change.

const cursorPrefix = "c1."

type syncCursor struct {
	Origin   int64
	Position int64 // = Origin on the first page
	End      int64 // 0 on the first page: the consent's number then
}

func (c syncCursor) paging() bool { return c.End > 0 }

func encodeCursor(consentID string, c syncCursor) string {
	s := cursorPrefix + consentID + "." + strconv.FormatInt(c.Origin, 10)
	if c.paging() {
		s += "." + strconv.FormatInt(c.Position, 10) + "." + strconv.FormatInt(c.End, 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

var errBadCursor = apierr.Invalid("cursor", "is not a cursor of this consent's transactions")

func decodeCursor(consentID, cursor string) (syncCursor, error) {
	if cursor == "" {
		return syncCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return syncCursor{}, errBadCursor
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix+consentID+".")
	if !ok {
		return syncCursor{}, errBadCursor
	}
	parts := strings.Split(rest, ".")
	nums := make([]int64, len(parts))
	for i, p := range parts {
		if nums[i], err = strconv.ParseInt(p, 10, 64); err != nil || nums[i] < 0 {
			return syncCursor{}, errBadCursor
		}
	}
	switch len(nums) {
	case 1:
		return syncCursor{Origin: nums[0], Position: nums[0]}, nil
	case 3:
		c := syncCursor{Origin: nums[0], Position: nums[1], End: nums[2]}
		if c.Origin > c.Position || c.Position >= c.End {
			return syncCursor{}, errBadCursor
		}
		return c, nil
	}
	return syncCursor{}, errBadCursor
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
	if _, derr := time.Parse(time.DateOnly, date); err != nil || !ok || derr != nil || !ids.Valid("txn", id) {
		return p, apierr.Invalid("page_token", "is not a page token of this list")
	}
	p.BookingDate, p.ID = date, id
	return p, nil
}

// DefaultPageSize is a page's size when the request gives none.
const DefaultPageSize = 100
