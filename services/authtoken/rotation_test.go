package authtoken_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

func TestHousekeepingDeletesWhatCanNoLongerBeUsed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, k := newClient(t, b)
	u := newUser(t, b, c.ID, "u-1")
	g, err := b.svc.ClientCredentials(b.ctx, c.ID, k.Secret)
	require.NoError(t, err)
	_, err = b.svc.CreateLinkToken(b.ctx, c.ID, authtoken.NewLinkToken{UserID: u.ID, Products: []string{"ACCOUNTS"}, Country: "CL"})
	require.NoError(t, err)

	count := func(table string) int {
		conn, err := pgx.Connect(b.ctx, b.url)
		require.NoError(t, err)
		defer conn.Close(b.ctx)
		var n int
		require.NoError(t, conn.QueryRow(b.ctx, "SELECT count(*) FROM authtoken."+table).Scan(&n))
		return n
	}
	require.NoError(t, b.svc.Housekeep(b.ctx))
	require.Equal(t, []int{1, 1}, []int{count("refresh_tokens"), count("link_tokens")}, "live rows stay")
	_, err = b.svc.Refresh(b.ctx, c.ID, k.Secret, g.RefreshToken)
	require.NoError(t, err, "and still work")

	b.clock.Advance(b.cfg.RefreshFamilyTTL + time.Hour)
	require.NoError(t, b.svc.Housekeep(b.ctx))
	require.Equal(t, []int{0, 0}, []int{count("refresh_tokens"), count("link_tokens")})
}
