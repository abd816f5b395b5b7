package taxid

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// row is one Normalize case: want is the normalised value for a valid input,
// reason the error's Reason for an invalid one.
type row struct {
	name   string
	in     string
	want   string
	reason string
}

var rutRows = []row{
	{name: "dotted RUT with a hyphen is normalised without dots", in: "12.345.678-5", want: "12345678-5"},
	{name: "RUT with only a hyphen is already normal", in: "12345678-5", want: "12345678-5"},
	{name: "RUT without punctuation gets a hyphen before the check digit", in: "123456785", want: "12345678-5"},
	{name: "commonly cited company RUT is valid", in: "76.086.428-5", want: "76086428-5"},
	{name: "Banco de Chile's RUT is valid", in: "97.004.000-5", want: "97004000-5"},
	{name: "lower-case k check digit is upper-cased", in: "1.000.005-k", want: "1000005-K"},
	{name: "upper-case K check digit is kept", in: "1000005-K", want: "1000005-K"},
	{name: "K check digit without a hyphen is accepted", in: "10000013k", want: "10000013-K"},
	{name: "remainder 11 gives check digit 0", in: "1.000.013-0", want: "1000013-0"},
	{name: "one-digit body is accepted", in: "1-9", want: "1-9"},
	{name: "surrounding white space is ignored", in: "  12.345.678-5\t\n", want: "12345678-5"},
	{name: "leading zeros are dropped", in: "012.345.678-5", want: "12345678-5"},
	{name: "zero padding to ten digits is dropped", in: "0012345678-5", want: "12345678-5"},

	{name: "wrong check digit is rejected", in: "12.345.678-6", reason: reasonCheckDigit},
	{name: "K where the check digit is a number is rejected", in: "12.345.678-K", reason: reasonCheckDigit},
	{name: "0 where the check digit is K is rejected", in: "1.000.005-0", reason: reasonCheckDigit},
	{name: "letter in the body is rejected", in: "12.34A.678-5", reason: reasonRUTChars},
	{name: "K in the body is rejected", in: "12K45678-5", reason: reasonRUTBody},
	{name: "letter other than K as check digit is rejected", in: "12.345.678-X", reason: reasonRUTChars},
	{name: "hyphen two places from the end is rejected", in: "1234567-85", reason: reasonRUTHyphen},
	{name: "two hyphens are rejected", in: "12-345678-5", reason: reasonRUTHyphen},
	{name: "nine-digit body is rejected", in: "123.456.789-0", reason: reasonRUTLength},
	{name: "check digit alone is rejected", in: "5", reason: reasonRUTLength},
	{name: "punctuation alone is rejected", in: ".-", reason: reasonRUTLength},
	{name: "zero body is rejected", in: "0-0", reason: reasonRUTZero},
	{name: "all-zero padded body is rejected", in: "00.000.000-0", reason: reasonRUTZero},
	{name: "empty RUT is rejected", in: "", reason: reasonEmpty},
	{name: "blank RUT is rejected", in: "   ", reason: reasonEmpty},
	{name: "comma as a separator is rejected", in: "12,345,678-5", reason: reasonRUTChars},
}

var cpfRows = []row{
	{name: "formatted CPF is normalised to digits", in: "529.982.247-25", want: "52998224725"},
	{name: "bare CPF is already normal", in: "52998224725", want: "52998224725"},
	{name: "CPF with only a hyphen is accepted", in: "529982247-25", want: "52998224725"},
	{name: "CPF with spaces is accepted", in: " 529 982 247 25 ", want: "52998224725"},
	{name: "CPF whose first check digit comes from remainder 1 is valid", in: "123.456.789-09", want: "12345678909"},

	{name: "wrong second check digit is rejected", in: "529.982.247-26", reason: reasonCheckDigit},
	{name: "wrong first check digit is rejected", in: "529.982.247-35", reason: reasonCheckDigit},
	{name: "swapped digits are rejected", in: "259.982.247-25", reason: reasonCheckDigit},
	{name: "all-same CPF that passes the check digits is rejected", in: "111.111.111-11", reason: reasonCPFSame},
	{name: "all-zero CPF is rejected", in: "000.000.000-00", reason: reasonCPFSame},
	{name: "CPF with ten digits is rejected", in: "529.982.247-2", reason: reasonCPFLength},
	{name: "CPF with twelve digits is rejected", in: "529.982.247-250", reason: reasonCPFLength},
	{name: "letter where a digit belongs is rejected", in: "529.982.24A-25", reason: reasonCPFChars},
	{name: "slash in a CPF is rejected", in: "529/982/247-25", reason: reasonCPFChars},
	{name: "full-width digits are rejected", in: "５２９９８２２４７２５", reason: reasonCPFChars},
	{name: "empty CPF is rejected", in: "", reason: reasonEmpty},
}

var cnpjRows = []row{
	{name: "formatted CNPJ is normalised to digits", in: "11.222.333/0001-81", want: "11222333000181"},
	{name: "bare CNPJ is already normal", in: "11222333000181", want: "11222333000181"},
	{name: "another formatted CNPJ is valid", in: "12.345.678/0001-95", want: "12345678000195"},
	{name: "Receita Federal's alphanumeric example is valid", in: "12.ABC.345/01DE-35", want: "12ABC34501DE35"},
	{name: "lower-case alphanumeric CNPJ is upper-cased", in: "12.abc.345/01de-35", want: "12ABC34501DE35"},
	{name: "bare alphanumeric CNPJ is already normal", in: "12ABC34501DE35", want: "12ABC34501DE35"},
	{name: "surrounding white space around a CNPJ is ignored", in: "\t11.222.333/0001-81 ", want: "11222333000181"},

	{name: "wrong second check digit is rejected", in: "11.222.333/0001-82", reason: reasonCheckDigit},
	{name: "wrong first check digit is rejected", in: "11.222.333/0001-71", reason: reasonCheckDigit},
	{name: "alphanumeric CNPJ with a wrong check digit is rejected", in: "12.ABC.345/01DE-36", reason: reasonCheckDigit},
	{name: "letter read as a digit is rejected", in: "12.ABC.345/01DF-35", reason: reasonCheckDigit},
	{name: "letter in the check digits is rejected", in: "12.ABC.345/01DE-3A", reason: reasonCNPJDigits},
	{name: "all-zero CNPJ is rejected", in: "00.000.000/0000-00", reason: reasonCNPJSame},
	{name: "all-same CNPJ is rejected", in: "11.111.111/1111-11", reason: reasonCNPJSame},
	{name: "CNPJ with 13 characters is rejected", in: "11.222.333/0001-8", reason: reasonCNPJLength},
	{name: "CNPJ with 15 characters is rejected", in: "11.222.333/0001-811", reason: reasonCNPJLength},
	{name: "underscore in a CNPJ is rejected", in: "11.222.333/0001_81", reason: reasonCNPJChars},
	{name: "accented letter in a CNPJ is rejected", in: "12.ÁBC.345/01DE-35", reason: reasonCNPJChars},
	{name: "empty CNPJ is rejected", in: " ", reason: reasonEmpty},
}

var rfcRows = []row{
	{name: "person's RFC is valid", in: "GODE561231GR8", want: "GODE561231GR8"},
	{name: "real RFC whose homoclave check digit does not compute is accepted", in: "VACE460910SX6", want: "VACE460910SX6"},
	{name: "lower-case person's RFC is upper-cased", in: "gode561231gr8", want: "GODE561231GR8"},
	{name: "person's RFC with spaces is compacted", in: "GODE 561231 GR8", want: "GODE561231GR8"},
	{name: "person's RFC with hyphens is compacted", in: "GODE-561231-GR8", want: "GODE561231GR8"},
	{name: "company's RFC is valid", in: "MAB9307148T4", want: "MAB9307148T4"},
	{name: "company's RFC with hyphens is compacted", in: "MAB-930714-8T4", want: "MAB9307148T4"},
	{name: "Walmart de México's RFC is valid", in: "WMT970714R10", want: "WMT970714R10"},
	{name: "SAT's own RFC is valid", in: "SAT970701NN3", want: "SAT970701NN3"},
	{name: "RFC with Ñ, Feb 29 2000 and check digit A is valid", in: "PEÑA000229ABA", want: "PEÑA000229ABA"},
	{name: "lower-case ñ is upper-cased", in: "peña000229aba", want: "PEÑA000229ABA"},
	{name: "company's RFC with Ñ is valid", in: "ÑAÑ000229AB3", want: "ÑAÑ000229AB3"},
	{name: "company's RFC with an ampersand is valid", in: "A&C991231XY5", want: "A&C991231XY5"},

	{name: "February 30 is not a date", in: "GODE560230GR8", reason: reasonRFCDate},
	{name: "February 29 of a non-leap year is not a date", in: "GODE570229GR8", reason: reasonRFCDate},
	{name: "April 31 is not a date", in: "GODE560431GR8", reason: reasonRFCDate},
	{name: "month 13 is not a date", in: "GODE561331GR8", reason: reasonRFCDate},
	{name: "day 00 is not a date", in: "GODE561200GR8", reason: reasonRFCDate},
	{name: "letter in the date is rejected", in: "GODE56I231GR8", reason: reasonRFCDateShape},
	{name: "digit among a person's letters is rejected", in: "G0DE561231GR8", reason: reasonRFCPersonName},
	{name: "digit among a company's letters is rejected", in: "M4B9307148T4", reason: reasonRFCCompanyName},
	{name: "symbol in the homoclave is rejected", in: "GODE561231G&8", reason: reasonRFCHomoclave},
	{name: "RFC without a homoclave is rejected", in: "GODE561231", reason: reasonRFCLength},
	{name: "RFC with 14 characters is rejected", in: "GODE561231GR8X", reason: reasonRFCLength},
	{name: "generic RFC for the general public is rejected", in: "XAXX010101000", reason: reasonRFCGeneric},
	{name: "generic RFC for foreigners is rejected", in: "XEXX-010101-000", reason: reasonRFCGeneric},
	{name: "underscore in an RFC is rejected", in: "GOD_561231GR8", reason: reasonRFCPersonName},
	{name: "empty RFC is rejected", in: "", reason: reasonEmpty},
	{name: "RFC of only hyphens is rejected", in: "---", reason: reasonEmpty},
}

var otherRows = []row{
	{name: "plain id is kept", in: "AB123456", want: "AB123456"},
	{name: "surrounding white space is trimmed and inner spaces kept", in: "  DE 123 456 789 \n", want: "DE 123 456 789"},
	{name: "non-ASCII letters and punctuation are kept", in: "Ü-1234/ß·ñ", want: "Ü-1234/ß·ñ"},
	{name: "64 characters are accepted", in: strings.Repeat("é", 64), want: strings.Repeat("é", 64)},

	{name: "65 characters are rejected", in: strings.Repeat("é", 65), reason: reasonOtherLength},
	{name: "NUL is rejected", in: "AB\x00CD", reason: reasonOtherPrintable},
	{name: "inner tab is rejected", in: "AB\tCD", reason: reasonOtherPrintable},
	{name: "zero-width space is rejected", in: "AB\u200bCD", reason: reasonOtherPrintable},
	{name: "right-to-left override is rejected", in: "AB\u202eDC", reason: reasonOtherPrintable},
	{name: "invalid UTF-8 is rejected", in: "AB\xffCD", reason: reasonOtherUTF8},
	{name: "empty id is rejected", in: "", reason: reasonEmpty},
	{name: "blank id is rejected", in: " \t ", reason: reasonEmpty},
}

// tables lists every table with its type, for tests that run over all.
var tables = []struct {
	t    Type
	rows []row
}{
	{RUT, rutRows},
	{CPF, cpfRows},
	{CNPJ, cnpjRows},
	{RFC, rfcRows},
	{Other, otherRows},
}

// allReasons is every Reason Normalize may give. Fuzz targets check that
// errors come from this list, which is what keeps values out of them.
var allReasons = map[string]bool{
	reasonTypeUnspecified: true, reasonTypeUnknown: true, reasonEmpty: true, reasonCheckDigit: true,
	reasonRUTChars: true, reasonRUTBody: true, reasonRUTHyphen: true, reasonRUTLength: true, reasonRUTZero: true,
	reasonCPFChars: true, reasonCPFLength: true, reasonCPFSame: true,
	reasonCNPJChars: true, reasonCNPJLength: true, reasonCNPJDigits: true, reasonCNPJSame: true,
	reasonRFCLength: true, reasonRFCCompanyName: true, reasonRFCPersonName: true, reasonRFCDateShape: true,
	reasonRFCDate: true, reasonRFCHomoclave: true, reasonRFCGeneric: true,
	reasonOtherUTF8: true, reasonOtherLength: true, reasonOtherPrintable: true,
}

func runRows(t *testing.T, typ Type, rows []row) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			got, err := Normalize(typ, r.in)
			if r.reason == "" {
				if err != nil {
					t.Fatalf("Normalize(%v, %q) failed: %v", typ, r.in, err)
				}
				if got != r.want {
					t.Fatalf("Normalize(%v, %q) = %q, want %q", typ, r.in, got, r.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Normalize(%v, %q) = %q, want error %q", typ, r.in, got, r.reason)
			}
			if got != "" {
				t.Errorf("Normalize(%v, %q) returned %q with its error, want \"\"", typ, r.in, got)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Normalize(%v, %q) error is %T, want *Error", typ, r.in, err)
			}
			if e.Reason != r.reason || err.Error() != r.reason {
				t.Fatalf("Normalize(%v, %q) error = %q, want %q", typ, r.in, err, r.reason)
			}
		})
	}
}

func TestNormalizeRUT(t *testing.T)   { runRows(t, RUT, rutRows) }
func TestNormalizeCPF(t *testing.T)   { runRows(t, CPF, cpfRows) }
func TestNormalizeCNPJ(t *testing.T)  { runRows(t, CNPJ, cnpjRows) }
func TestNormalizeRFC(t *testing.T)   { runRows(t, RFC, rfcRows) }
func TestNormalizeOther(t *testing.T) { runRows(t, Other, otherRows) }

func TestNormalizeRejectsTypes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		t      Type
		reason string
	}{
		{"unspecified type is rejected", Unspecified, reasonTypeUnspecified},
		{"type beyond Other is rejected", Other + 1, reasonTypeUnknown},
		{"negative type is rejected", -1, reasonTypeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalize(tc.t, "52998224725")
			if err == nil || err.Error() != tc.reason || got != "" {
				t.Fatalf("Normalize(%v, ...) = %q, %v; want error %q", tc.t, got, err, tc.reason)
			}
		})
	}
}

func TestPunctuationVariantsNormaliseToTheSameValue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		t        Type
		want     string
		variants []string
	}{
		{"RUT variants agree", RUT, "12345678-5", []string{"12.345.678-5", "12345678-5", "123456785", "12.345.6785", " 12 345 678 - 5 ", "012.345.678-5"}},
		{"RUT variants with K agree", RUT, "1000005-K", []string{"1.000.005-K", "1.000.005-k", "1000005K", "1000005k", "01000005-k"}},
		{"CPF variants agree", CPF, "52998224725", []string{"529.982.247-25", "52998224725", "529982247-25", "529 982 247 25", "529.982.24725"}},
		{"CNPJ variants agree", CNPJ, "11222333000181", []string{"11.222.333/0001-81", "11222333000181", "11222333/0001-81", "11.222.333.0001-81", "11 222 333 0001 81"}},
		{"alphanumeric CNPJ variants agree", CNPJ, "12ABC34501DE35", []string{"12.ABC.345/01DE-35", "12.abc.345/01de-35", "12ABC34501DE35", "12aBc34501dE35"}},
		{"RFC variants agree", RFC, "GODE561231GR8", []string{"GODE561231GR8", "gode561231gr8", "GODE 561231 GR8", "GODE-561231-GR8", " Gode-561231 gR8 "}},
		{"RFC variants with Ñ agree", RFC, "PEÑA000229ABA", []string{"PEÑA000229ABA", "peña000229aba", "PEÑA-000229-ABA", "Peña 000229 aba"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range tc.variants {
				got, err := Normalize(tc.t, v)
				if err != nil || got != tc.want {
					t.Errorf("Normalize(%v, %q) = %q, %v; want %q", tc.t, v, got, err, tc.want)
				}
			}
		})
	}
}

func TestNormalizedValuesNormaliseToThemselves(t *testing.T) {
	for _, tab := range tables {
		for _, r := range tab.rows {
			if r.reason != "" {
				continue
			}
			t.Run(r.name, func(t *testing.T) {
				got, err := Normalize(tab.t, r.want)
				if err != nil || got != r.want {
					t.Fatalf("Normalize(%v, %q) = %q, %v; want it unchanged", tab.t, r.want, got, err)
				}
			})
		}
	}
}

func TestErrorsNeverContainTheValue(t *testing.T) {
	for _, tab := range tables {
		for _, r := range tab.rows {
			if r.reason == "" {
				continue
			}
			t.Run(r.name, func(t *testing.T) {
				_, err := Normalize(tab.t, r.in)
				if err == nil {
					t.Fatalf("Normalize(%v, %q) succeeded", tab.t, r.in)
				}
				if !allReasons[err.Error()] {
					t.Fatalf("error %q is not one of the fixed reasons", err)
				}
				// Blank and very short inputs are substrings of many texts.
				if v := strings.TrimSpace(r.in); len(v) >= 3 && strings.Contains(err.Error(), v) {
					t.Fatalf("error %q contains the value %q", err, v)
				}
			})
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Type
		in   string
		want Kind
	}{
		{"CPF denotes a person", CPF, "52998224725", Natural},
		{"formatted CPF denotes a person", CPF, "529.982.247-25", Natural},
		{"CNPJ denotes a company", CNPJ, "11222333000181", Juridical},
		{"alphanumeric CNPJ denotes a company", CNPJ, "12ABC34501DE35", Juridical},
		{"13-character RFC denotes a person", RFC, "GODE561231GR8", Natural},
		{"13-character RFC with Ñ denotes a person", RFC, "PEÑA000229ABA", Natural},
		{"12-character RFC denotes a company", RFC, "MAB9307148T4", Juridical},
		{"12-character RFC with Ñ denotes a company", RFC, "ÑAÑ000229AB3", Juridical},
		{"RUT does not tell", RUT, "76086428-5", KindUnspecified},
		{"Other does not tell", Other, "AB123456", KindUnspecified},
		{"invalid CPF does not tell", CPF, "52998224726", KindUnspecified},
		{"invalid CNPJ does not tell", CNPJ, "11222333000182", KindUnspecified},
		{"invalid RFC does not tell", RFC, "GODE561331GR8", KindUnspecified},
		{"empty CPF does not tell", CPF, "", KindUnspecified},
		{"unspecified type does not tell", Unspecified, "52998224725", KindUnspecified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.t, tc.in); got != tc.want {
				t.Fatalf("KindOf(%v, %q) = %v, want %v", tc.t, tc.in, got, tc.want)
			}
		})
	}
}

func TestStringNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  fmt.Stringer
		want string
	}{
		{"RUT is named RUT", RUT, "RUT"},
		{"CNPJ is named CNPJ", CNPJ, "CNPJ"},
		{"Other is named Other", Other, "Other"},
		{"unknown type shows its number", Type(9), "Type(9)"},
		{"Natural is named Natural", Natural, "Natural"},
		{"Juridical is named Juridical", Juridical, "Juridical"},
		{"unknown kind shows its number", Kind(7), "Kind(7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := tc.got.String(); s != tc.want {
				t.Fatalf("String() = %q, want %q", s, tc.want)
			}
		})
	}
}

// The tests below check the check-digit code against independent,
// spelled-out versions of the published algorithms, over many generated ids.

var rng = rand.New(rand.NewPCG(1, 2))

func randString(alphabet string, n int) string {
	a := []rune(alphabet)
	r := make([]rune, n)
	for i := range r {
		r[i] = a[rng.IntN(len(a))]
	}
	return string(r)
}

// refBR is the Receita Federal definition with explicit weights.
func refBR(prefix string, weights []int) string {
	sum := 0
	for i, c := range prefix {
		sum += (int(c) - 48) * weights[i]
	}
	if r := sum % 11; r >= 2 {
		return fmt.Sprint(11 - r)
	}
	return "0"
}

func TestCPFCheckDigitsMatchThePublishedWeights(t *testing.T) {
	w1 := []int{10, 9, 8, 7, 6, 5, 4, 3, 2}
	w2 := []int{11, 10, 9, 8, 7, 6, 5, 4, 3, 2}
	for range 2000 {
		body := randString("0123456789", 9)
		d1 := refBR(body, w1)
		id := body + d1 + refBR(body+d1, w2)
		if allSame([]byte(id)) {
			continue
		}
		got, err := Normalize(CPF, id[:3]+"."+id[3:6]+"."+id[6:9]+"-"+id[9:])
		if err != nil || got != id {
			t.Fatalf("Normalize(CPF, %q) = %q, %v; want it valid", id, got, err)
		}
	}
}

func TestCNPJCheckDigitsMatchThePublishedWeights(t *testing.T) {
	w1 := []int{5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	w2 := []int{6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	for i := range 4000 {
		alphabet := "0123456789"
		if i%2 == 1 {
			alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		}
		body := randString(alphabet, 12)
		d1 := refBR(body, w1)
		id := body + d1 + refBR(body+d1, w2)
		if allSame([]byte(id)) {
			continue
		}
		got, err := Normalize(CNPJ, strings.ToLower(id))
		if err != nil || got != id {
			t.Fatalf("Normalize(CNPJ, %q) = %q, %v; want it valid", id, got, err)
		}
	}
}

func TestRUTCheckDigitsMatchTheReference(t *testing.T) {
	for range 2000 {
		body := fmt.Sprint(1 + rng.IntN(99_999_999))
		sum := 0
		for i := range len(body) {
			sum += int(body[len(body)-1-i]-'0') * (2 + i%6)
		}
		dv := map[int]string{11: "0", 10: "K"}[11-sum%11]
		if dv == "" {
			dv = fmt.Sprint(11 - sum%11)
		}
		id := body + "-" + dv
		got, err := Normalize(RUT, strings.ToLower(id))
		if err != nil || got != id {
			t.Fatalf("Normalize(RUT, %q) = %q, %v; want it valid", id, got, err)
		}
	}
}
