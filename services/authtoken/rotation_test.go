package authtoken_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/services/authtoken"
)

func TestSigningKeysRotateOnTheirOwnWhenDue(t *testing.T) {
	t.Parallel()
	b := setupWith(t, func(c *authtoken.Config) { c.KeyRotation = 48 * time.Hour })
	first := jwks(t, b)
	require.Len(t, first, 1)

	require.NoError(t, b.svc.RotateIfDue(b.ctx))
	require.Len(t, jwks(t, b), 1, "a young key is left alone")

	b.clock.Advance(48 * time.Hour)
	require.NoError(t, b.svc.RotateIfDue(b.ctx))
	require.NoError(t, b.svc.RotateIfDue(b.ctx), "replicas calling it together add one key")
	second := jwks(t, b)
	require.Len(t, second, 2, "the due key got a successor, published ahead of signing")
	for kid := range first {
		require.Contains(t, second, kid, "the old key stays published")
	}
}

func TestAutomaticRotationCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	b := setup(t) // KeyRotation 0
	b.clock.Advance(10 * 365 * 24 * time.Hour)
	require.NoError(t, b.svc.RotateIfDue(b.ctx))
	require.Len(t, jwks(t, b), 1)
}
