// Package taxid validates and normalises end users' tax ids: Chile's RUT,
// Brazil's CPF and CNPJ (including the alphanumeric CNPJ), Mexico's RFC, and
// free-form ids of any other country.
//
// Normalize accepts the punctuation people usually type and returns one
// canonical form per id, so that equal ids compare equal as strings. Its
// errors are *Error values whose text is safe to show next to a form field
// and to log: it never contains the value being checked.
package taxid

import (
	"strconv"
	"unicode/utf8"
)

// Type is the kind of tax id. Its values match the TaxIdType enum of the
// authtoken API.
type Type int

const (
	// Unspecified is the zero Type; Normalize rejects it.
	Unspecified Type = iota
	// RUT is Chile's Rol Único Tributario, for people and companies: a body
	// of up to 8 digits and a mod-11 check digit (0-9 or K). Accepted as
	// "12.345.678-5", "12345678-5" or "123456785", with k or K; normalised to
	// "12345678-5": no dots, no leading zeros, a hyphen before the check
	// digit, upper-case K.
	RUT
	// CPF is Brazil's Cadastro de Pessoas Físicas, for people: 11 digits, the
	// last two mod-11 check digits. Accepted with or without the usual
	// punctuation ("529.982.247-25"); normalised to the 11 digits.
	CPF
	// CNPJ is Brazil's Cadastro Nacional da Pessoa Jurídica, for companies:
	// 14 characters, the first 12 digits or (for the alphanumeric CNPJ issued
	// from 2026) upper-case letters, the last two numeric mod-11 check digits.
	// Accepted with the usual punctuation ("11.222.333/0001-81") and in lower
	// case; normalised to the 14 characters in upper case.
	CNPJ
	// RFC is Mexico's Registro Federal de Contribuyentes: 12 characters for
	// companies (3 letters, a YYMMDD date, a 3-character homoclave) or 13 for
	// people (4 letters, date, homoclave). The letters may include Ñ and &,
	// the date must exist and the homoclave's last character is a check
	// digit. Accepted with spaces or hyphens and in lower case; normalised to
	// upper case without them.
	RFC
	// Other is any other tax id: 1 to 64 printable characters, stored as
	// given apart from trimming surrounding white space.
	Other
)

// String returns the name of the type, such as "RUT".
func (t Type) String() string {
	switch t {
	case Unspecified:
		return "Unspecified"
	case RUT:
		return "RUT"
	case CPF:
		return "CPF"
	case CNPJ:
		return "CNPJ"
	case RFC:
		return "RFC"
	case Other:
		return "Other"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Kind is the kind of person a tax id denotes. Its values match the UserKind
// enum of the authtoken API.
type Kind int

const (
	// KindUnspecified means the tax id does not tell.
	KindUnspecified Kind = iota
	// Natural is a person.
	Natural
	// Juridical is a company.
	Juridical
)

// String returns the name of the kind, such as "Natural".
func (k Kind) String() string {
	switch k {
	case KindUnspecified:
		return "Unspecified"
	case Natural:
		return "Natural"
	case Juridical:
		return "Juridical"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is the error Normalize returns for a value it rejects. Reason is a
// short, lower-case phrase meant to follow a field name ("tax_id: check digit
// does not match"); it never contains the value.
type Error struct {
	Reason string
}

// Error returns e.Reason.
func (e *Error) Error() string { return e.Reason }

// Reasons shared by several types. Each type's own reasons live next to its
// validator. Every reason is a constant, which is what guarantees that an
// error never echoes the value.
const (
	reasonTypeUnspecified = "tax id type must be specified"
	reasonTypeUnknown     = "unknown tax id type"
	reasonEmpty           = "must not be empty"
	reasonCheckDigit      = "check digit does not match"
)

func fail(reason string) error { return &Error{Reason: reason} }

// Normalize checks value for type t and returns its canonical form.
//
// Surrounding white space is ignored for every type. A rejected value gives
// an error of type *Error whose text never contains the value; see the Type
// constants for what each type accepts and how it is normalised. Normalize is
// idempotent: a value it returns normalises to itself.
func Normalize(t Type, value string) (string, error) {
	switch t {
	case Unspecified:
		return "", fail(reasonTypeUnspecified)
	case RUT:
		return normalizeRUT(value)
	case CPF:
		return normalizeCPF(value)
	case CNPJ:
		return normalizeCNPJ(value)
	case RFC:
		return normalizeRFC(value)
	case Other:
		return normalizeOther(value)
	}
	return "", fail(reasonTypeUnknown)
}

// KindOf reports which kind of person a tax id denotes where its type decides
// it: a CPF or a 13-character RFC is Natural, a CNPJ or a 12-character RFC is
// Juridical. A RUT (Chile uses one series for both), an Other, or a value
// that is not valid for t gives KindUnspecified. The value is meant to be
// normalised already, but any form Normalize accepts gives the same answer.
func KindOf(t Type, normalized string) Kind {
	n, err := Normalize(t, normalized)
	if err != nil {
		return KindUnspecified
	}
	switch t {
	case CPF:
		return Natural
	case CNPJ:
		return Juridical
	case RFC:
		if utf8.RuneCountInString(n) == rfcPersonLen {
			return Natural
		}
		return Juridical
	}
	return KindUnspecified
}
