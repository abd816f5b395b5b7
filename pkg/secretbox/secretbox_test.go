package secretbox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/secretbox"
)

func TestSealOpenRoundTripAndRotation(t *testing.T) {
	oldSpec := secretbox.NewKeySpec("k1")
	old, err := secretbox.Parse(oldSpec)
	require.NoError(t, err)
	sealed := old.Seal([]byte("hunter2"), []byte("row-1"))
	require.NotContains(t, string(sealed), "hunter2")

	rotated, err := secretbox.Parse(secretbox.NewKeySpec("k2") + "," + oldSpec)
	require.NoError(t, err)
	plain, err := rotated.Open(sealed, []byte("row-1"))
	require.NoError(t, err, "values sealed with a retired key still open")
	require.Equal(t, "hunter2", string(plain))

	_, err = rotated.Open(sealed, []byte("row-2"))
	require.ErrorIs(t, err, secretbox.ErrOpen, "a value moved to another row does not open")

	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	_, err = rotated.Open(tampered, []byte("row-1"))
	require.ErrorIs(t, err, secretbox.ErrOpen)

	_, err = secretbox.Parse(secretbox.NewKeySpec("k2"))
	require.NoError(t, err)
	other, _ := secretbox.Parse(secretbox.NewKeySpec("k3"))
	_, err = other.Open(sealed, []byte("row-1"))
	require.ErrorIs(t, err, secretbox.ErrOpen, "an unknown key id does not open")
}

func TestParseRejectsBadSpecs(t *testing.T) {
	for name, spec := range map[string]string{
		"empty":         "",
		"no id":         ":AAAA",
		"short key":     "k1:AAAA",
		"not base64":    "k1:!!!",
		"duplicate ids": secretbox.NewKeySpec("k1") + "," + secretbox.NewKeySpec("k1"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := secretbox.Parse(spec)
			require.Error(t, err)
		})
	}
}

func FuzzOpen(f *testing.F) {
	box, _ := secretbox.Parse(secretbox.NewKeySpec("k1"))
	f.Add(box.Seal([]byte("x"), nil))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		_, _ = box.Open(sealed, nil) // must not panic
	})
}
