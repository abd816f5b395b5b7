package taxid_test

import (
	"fmt"

	"puente.dev/services/authtoken/taxid"
)

func ExampleNormalize() {
	for _, in := range []struct {
		t     taxid.Type
		value string
	}{
		{taxid.RUT, "76.086.428-5"},
		{taxid.CPF, "529.982.247-25"},
		{taxid.CNPJ, "12.abc.345/01de-35"},
		{taxid.RFC, "gode-561231-gr8"},
		{taxid.Other, "  DE123456789 "},
		{taxid.CPF, "529.982.247-26"},
		{taxid.RFC, "GODE560230GR8"},
	} {
		n, err := taxid.Normalize(in.t, in.value)
		if err != nil {
			fmt.Printf("%v: %v\n", in.t, err)
			continue
		}
		fmt.Printf("%v: %s (%v)\n", in.t, n, taxid.KindOf(in.t, n))
	}
	// Output:
	// RUT: 76086428-5 (Unspecified)
	// CPF: 52998224725 (Natural)
	// CNPJ: 12ABC34501DE35 (Juridical)
	// RFC: GODE561231GR8 (Natural)
	// Other: DE123456789 (Unspecified)
	// CPF: check digit does not match
	// RFC: not a valid date
}
