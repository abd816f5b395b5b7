// Package ids makes Puente's resource ids: a type prefix and a time-sortable ULID, "usr_01JD…",
// so that a support engineer can tell a user from a key at a glance.
package ids

import (
	"strings"

	"github.com/oklog/ulid/v2"
)

// New returns a new id with the given prefix ("usr", "key", ...).
func New(prefix string) string {
	return prefix + "_" + ulid.Make().String()
}

// Valid reports whether id is a well-formed id with the given prefix.
func Valid(prefix, id string) bool {
	body, ok := strings.CutPrefix(id, prefix+"_")
	// ULID parsing forgives lower case; our ids are always upper case, so one id has one spelling.
	if !ok || len(body) != ulid.EncodedSize || body != strings.ToUpper(body) {
		return false
	}
	_, err := ulid.ParseStrict(body)
	return err == nil
}
