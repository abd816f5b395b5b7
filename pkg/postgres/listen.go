package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Listen LISTENs on the channel that channelSQL (an SQL expression, such as
// `'jobs_' || current_schema()`) names on one of pool's connections, and calls wake once it
// listens (what was sent while nobody listened is due too) and after every notification, until
// ctx is done. A broken connection is replaced, after a delay that doubles from 0.5 s to 30 s.
func Listen(ctx context.Context, pool *pgxpool.Pool, channelSQL string, wake func(), log *slog.Logger) {
	const minDelay, maxDelay = 500 * time.Millisecond, 30 * time.Second
	delay := minDelay
	for {
		listened, err := listenOnce(ctx, pool, channelSQL, wake)
		if ctx.Err() != nil {
			return
		}
		if listened {
			delay = minDelay
		}
		log.WarnContext(ctx, "listening for notifications; reconnecting", "channel", channelSQL, "error", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

// listenOnce holds a connection of its own (taken out of the pool: a LISTENing connection must
// not serve other queries) until an error or ctx is done. listened reports whether it got as far
// as LISTEN.
func listenOnce(ctx context.Context, pool *pgxpool.Pool, channelSQL string, wake func()) (listened bool, err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	var channel string
	if err := conn.QueryRow(ctx, `SELECT `+channelSQL).Scan(&channel); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, err
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		wake()
	}
}
