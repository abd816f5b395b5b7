package taxid

import "strings"

const (
	reasonRUTChars  = "must contain only digits, dots, a hyphen and a check digit (0-9 or K)"
	reasonRUTBody   = "must have only digits before the check digit"
	reasonRUTHyphen = "hyphen must come right before the check digit"
	reasonRUTLength = "must have 1 to 8 digits before the check digit"
	reasonRUTZero   = "number must not be zero"

	rutMaxBody = 8
)

// normalizeRUT validates a Chilean RUT and returns it as body-hyphen-check
// digit, e.g. "12345678-5".
func normalizeRUT(value string) (string, error) {
	s := strings.TrimSpace(value)
	if s == "" {
		return "", fail(reasonEmpty)
	}
	// Collect digits and K, dropping dots and spaces and remembering where a
	// hyphen was.
	b := make([]byte, 0, len(s))
	hyphens, hyphenAt := 0, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			b = append(b, c)
		case c == 'k' || c == 'K':
			b = append(b, 'K')
		case c == '.' || c == ' ':
		case c == '-':
			hyphens++
			hyphenAt = len(b)
		default:
			return "", fail(reasonRUTChars)
		}
	}
	if len(b) == 0 {
		return "", fail(reasonRUTLength)
	}
	if hyphens > 1 || (hyphens == 1 && hyphenAt != len(b)-1) {
		return "", fail(reasonRUTHyphen)
	}
	body, dv := b[:len(b)-1], b[len(b)-1]
	for _, c := range body {
		if !isDigit(c) {
			return "", fail(reasonRUTBody)
		}
	}
	// Leading zeros do not change the check digit; some systems pad with them.
	for len(body) > 0 && body[0] == '0' {
		body = body[1:]
	}
	if len(body) == 0 && len(b) > 1 {
		return "", fail(reasonRUTZero)
	}
	if len(body) == 0 || len(body) > rutMaxBody {
		return "", fail(reasonRUTLength)
	}
	if rutCheckDigit(body) != dv {
		return "", fail(reasonCheckDigit)
	}
	return string(body) + "-" + string(dv), nil
}

// rutCheckDigit computes the RUT check digit of body, which must be all
// digits: weights 2, 3, 4, 5, 6, 7 cycling from the right, then 11 minus the
// sum mod 11, with 11 written as 0 and 10 as K.
func rutCheckDigit(body []byte) byte {
	sum, w := 0, 2
	for i := len(body) - 1; i >= 0; i-- {
		sum += int(body[i]-'0') * w
		if w++; w > 7 {
			w = 2
		}
	}
	switch d := 11 - sum%11; d {
	case 11:
		return '0'
	case 10:
		return 'K'
	default:
		return byte('0' + d)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
