package syncs

import (
	"encoding/base64"
	"strconv"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/page"
)

// Results are paged by position, not by id (pkg/page's keyset), so their page token is the
// last position given, in pkg/page's shape: unpadded base64url.

// ParseResultsPage reads a request's page_size and page_token.
func ParseResultsPage(size int32, token string) (ResultsPage, error) {
	p := ResultsPage{After: -1, Limit: int(size)}
	if p.Limit == 0 {
		p.Limit = page.DefaultSize
	}
	if token == "" {
		return p, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return ResultsPage{}, errBadPageToken
	}
	pos, err := strconv.Atoi(string(raw))
	if err != nil || pos < 0 || pos >= MaxUsers || strconv.Itoa(pos) != string(raw) {
		return ResultsPage{}, errBadPageToken
	}
	p.After = pos
	return p, nil
}

// ResultsPageToken is the next_page_token after the result at position.
func ResultsPageToken(position int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(position)))
}

var errBadPageToken = apierr.Invalid("page_token", "is not a page token of this list")
