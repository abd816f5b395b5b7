package taxid

import "strings"

const (
	reasonCPFChars  = "must contain only digits, dots and a hyphen"
	reasonCPFLength = "must have 11 digits"
	reasonCPFSame   = "must not be one digit repeated"

	reasonCNPJChars  = "must contain only letters, digits, dots, a slash and a hyphen"
	reasonCNPJLength = "must have 14 characters"
	reasonCNPJDigits = "must end with two digits"
	reasonCNPJSame   = "must not be one character repeated"

	cpfLen        = 11
	cnpjLen       = 14
	cpfMaxWeight  = 11
	cnpjMaxWeight = 9
)

// normalizeCPF validates a Brazilian CPF and returns its 11 digits.
func normalizeCPF(value string) (string, error) {
	s := strings.TrimSpace(value)
	if s == "" {
		return "", fail(reasonEmpty)
	}
	b := make([]byte, 0, cpfLen)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			b = append(b, c)
		case c == '.' || c == '-' || c == ' ':
		default:
			return "", fail(reasonCPFChars)
		}
	}
	if len(b) != cpfLen {
		return "", fail(reasonCPFLength)
	}
	if allSame(b) {
		return "", fail(reasonCPFSame)
	}
	if brMod11(b[:9], cpfMaxWeight) != b[9] || brMod11(b[:10], cpfMaxWeight) != b[10] {
		return "", fail(reasonCheckDigit)
	}
	return string(b), nil
}

// normalizeCNPJ validates a Brazilian CNPJ, numeric or alphanumeric, and
// returns its 14 characters in upper case.
func normalizeCNPJ(value string) (string, error) {
	s := strings.TrimSpace(value)
	if s == "" {
		return "", fail(reasonEmpty)
	}
	b := make([]byte, 0, cnpjLen)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c) || (c >= 'A' && c <= 'Z'):
			b = append(b, c)
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		case c == '.' || c == '/' || c == '-' || c == ' ':
		default:
			return "", fail(reasonCNPJChars)
		}
	}
	if len(b) != cnpjLen {
		return "", fail(reasonCNPJLength)
	}
	if !isDigit(b[12]) || !isDigit(b[13]) {
		return "", fail(reasonCNPJDigits)
	}
	if allSame(b) {
		return "", fail(reasonCNPJSame)
	}
	if brMod11(b[:12], cnpjMaxWeight) != b[12] || brMod11(b[:13], cnpjMaxWeight) != b[13] {
		return "", fail(reasonCheckDigit)
	}
	return string(b), nil
}

// brMod11 computes the next check digit of a CPF or CNPJ prefix: each
// character's value (its ASCII code minus 48, so a digit counts as itself and
// A as 17) times a weight of 2, 3, ... maxWeight from the right, cycling back
// to 2; then 0 if the sum mod 11 is below 2 and 11 minus it otherwise.
//
// With cpfMaxWeight the cycle never wraps, giving weights 10..2 and 11..2;
// with cnpjMaxWeight it gives 5..2,9..2 and 6..2,9..2, as Receita Federal
// publishes them.
func brMod11(prefix []byte, maxWeight int) byte {
	sum, w := 0, 2
	for i := len(prefix) - 1; i >= 0; i-- {
		sum += int(prefix[i]-'0') * w
		if w++; w > maxWeight {
			w = 2
		}
	}
	if r := sum % 11; r >= 2 {
		return byte('0' + 11 - r)
	}
	return '0'
}

func allSame(b []byte) bool {
	for _, c := range b[1:] {
		if c != b[0] {
			return false
		}
	}
	return true
}
