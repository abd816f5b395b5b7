package taxid

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkNormalize asserts what must hold for any input: Normalize does not
// panic, rejects with a fixed *Error reason, and accepts only values that
// normalise to themselves.
func checkNormalize(t *testing.T, typ Type, value string) {
	t.Helper()
	got, err := Normalize(typ, value)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Normalize(%v, %q) error is %T, want *Error", typ, value, err)
		}
		if !allReasons[e.Reason] {
			t.Fatalf("Normalize(%v, %q) gave reason %q, which is not a fixed reason", typ, value, e.Reason)
		}
		if got != "" {
			t.Fatalf("Normalize(%v, %q) returned %q with its error", typ, value, got)
		}
		if KindOf(typ, value) != KindUnspecified {
			t.Fatalf("KindOf(%v, %q) gave a kind for an invalid value", typ, value)
		}
		return
	}
	if got == "" || got != strings.TrimSpace(got) || !utf8.ValidString(got) {
		t.Fatalf("Normalize(%v, %q) = %q, not a trimmed non-empty string", typ, value, got)
	}
	again, err := Normalize(typ, got)
	if err != nil || again != got {
		t.Fatalf("Normalize(%v, %q) = %q, but that normalises to %q, %v", typ, value, got, again, err)
	}
	if k, k2 := KindOf(typ, value), KindOf(typ, got); k != k2 {
		t.Fatalf("KindOf(%v) differs between %q (%v) and %q (%v)", typ, value, k, got, k2)
	}
}

func seed(f *testing.F, rows []row, extra ...string) {
	for _, r := range rows {
		f.Add(r.in)
	}
	for _, s := range extra {
		f.Add(s)
	}
}

func FuzzRUT(f *testing.F) {
	seed(f, rutRows, "76086428-5", "1-9", "K", "-", "99.999.999-9")
	f.Fuzz(func(t *testing.T, s string) { checkNormalize(t, RUT, s) })
}

func FuzzCPF(f *testing.F) {
	seed(f, cpfRows, "12345678909", "...-", "5299822472５")
	f.Fuzz(func(t *testing.T, s string) { checkNormalize(t, CPF, s) })
}

func FuzzCNPJ(f *testing.F) {
	seed(f, cnpjRows, "12ABC34501DE35", "ZZZZZZZZZZZZ00", "./-")
	f.Fuzz(func(t *testing.T, s string) { checkNormalize(t, CNPJ, s) })
}

func FuzzRFC(f *testing.F) {
	seed(f, rfcRows, "ÑAÑ000229AB3", "A&C991231XY5", "ñ", "\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) { checkNormalize(t, RFC, s) })
}

func FuzzOther(f *testing.F) {
	seed(f, otherRows, "\u00a0AB\u00a0", "\u3000", "a\u0301")
	f.Fuzz(func(t *testing.T, s string) { checkNormalize(t, Other, s) })
}
