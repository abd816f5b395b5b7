package taxid

import "strings"

const (
	reasonRFCLength      = "must have 12 characters (companies) or 13 (people)"
	reasonRFCCompanyName = "must start with 3 letters"
	reasonRFCPersonName  = "must start with 4 letters"
	reasonRFCDateShape   = "must have a date (YYMMDD) after the letters"
	reasonRFCDate        = "not a valid date"
	reasonRFCHomoclave   = "must end with 3 letters or digits"
	reasonRFCGeneric     = "generic RFC is not accepted"

	rfcCompanyLen = 12
	rfcPersonLen  = 13
)

// Generic RFCs SAT defines for invoices to the general public and to
// foreigners. They identify nobody.
var rfcGeneric = map[string]bool{
	"XAXX010101000": true,
	"XEXX010101000": true,
}

// normalizeRFC validates a Mexican RFC's shape and date and returns it in upper case without
// spaces or hyphens. The homoclave's check digit is not verified: about 1.5% of the RFCs SAT
// issued carry one that does not compute (python-stdnum skips it by default too), and refusing
// a real customer is worse than accepting a typo.
func normalizeRFC(value string) (string, error) {
	s := strings.TrimSpace(value)
	if s == "" {
		return "", fail(reasonEmpty)
	}
	r := make([]rune, 0, rfcPersonLen)
	for _, c := range s {
		switch {
		case c == ' ' || c == '-':
			continue
		case c >= 'a' && c <= 'z':
			c += 'A' - 'a'
		case c == 'ñ':
			c = 'Ñ'
		}
		r = append(r, c)
	}
	if len(r) == 0 {
		return "", fail(reasonEmpty)
	}
	if len(r) != rfcCompanyLen && len(r) != rfcPersonLen {
		return "", fail(reasonRFCLength)
	}
	letters := len(r) - 9 // 3 for a company, 4 for a person
	for _, c := range r[:letters] {
		if !(c >= 'A' && c <= 'Z' || c == 'Ñ' || c == '&') {
			if letters == 3 {
				return "", fail(reasonRFCCompanyName)
			}
			return "", fail(reasonRFCPersonName)
		}
	}
	date := r[letters : letters+6]
	for _, c := range date {
		if c < '0' || c > '9' {
			return "", fail(reasonRFCDateShape)
		}
	}
	if !validYYMMDD(date) {
		return "", fail(reasonRFCDate)
	}
	for _, c := range r[letters+6:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", fail(reasonRFCHomoclave)
		}
	}
	n := string(r)
	if rfcGeneric[n] {
		return "", fail(reasonRFCGeneric)
	}
	return n, nil
}

// validYYMMDD reports whether six ASCII digits form a calendar date. The
// century is unknown, so a year is leap when divisible by 4: that is right
// for 1901-2099, and for 00 it takes 2000 (leap) over 1900 (not).
func validYYMMDD(d []rune) bool {
	yy := int(d[0]-'0')*10 + int(d[1]-'0')
	mm := int(d[2]-'0')*10 + int(d[3]-'0')
	dd := int(d[4]-'0')*10 + int(d[5]-'0')
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if mm < 1 || mm > 12 || dd < 1 {
		return false
	}
	if mm == 2 && yy%4 == 0 {
		return dd <= 29
	}
	return dd <= days[mm-1]
}
