// Package page reads and writes the page tokens of Puente's list methods: keyset pagination over
// ids that sort by creation (ULIDs), newest first.
package page

import (
	"encoding/base64"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/ids"
)

// DefaultSize is a page's size when the request gives none.
const DefaultSize = 50

// Page is where a list resumes: after the id After, at most Limit items.
type Page struct {
	After string
	Limit int
}

// Parse reads a request's page_size and page_token for a list of ids with prefix.
func Parse(size int32, token, prefix string) (Page, error) {
	p := Page{Limit: int(size)}
	if p.Limit == 0 {
		p.Limit = DefaultSize
	}
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !ids.Valid(prefix, string(raw)) {
			return Page{}, apierr.Invalid("page_token", "is not a page token of this list")
		}
		p.After = string(raw)
	}
	return p, nil
}

// Token is the next_page_token after the item lastID.
func Token(lastID string) string { return base64.RawURLEncoding.EncodeToString([]byte(lastID)) }
