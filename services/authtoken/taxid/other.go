package taxid

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	reasonOtherUTF8      = "must be valid UTF-8 text"
	reasonOtherLength    = "must have at most 64 characters"
	reasonOtherPrintable = "must not contain control or invisible characters"

	otherMaxLen = 64
)

// normalizeOther accepts 1 to 64 printable characters, trimmed of
// surrounding white space.
func normalizeOther(value string) (string, error) {
	if !utf8.ValidString(value) {
		return "", fail(reasonOtherUTF8)
	}
	s := strings.TrimSpace(value)
	if s == "" {
		return "", fail(reasonEmpty)
	}
	if utf8.RuneCountInString(s) > otherMaxLen {
		return "", fail(reasonOtherLength)
	}
	for _, c := range s {
		// IsPrint admits letters, marks, numbers, punctuation, symbols and
		// the ASCII space; it rejects control and format characters (such as
		// bidirectional overrides and zero-width spaces) and other spaces.
		if !unicode.IsPrint(c) {
			return "", fail(reasonOtherPrintable)
		}
	}
	return s, nil
}
