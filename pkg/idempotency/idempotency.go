// Package idempotency makes a service's create calls safe to repeat: a call carrying a
// request_id runs once per (scope, request_id), and a repeat gets the first response back.
//
// The state is a table of the service's own schema, which the service's migrations create (the
// authtoken and consent services in their 001_init, which have shipped):
//
//	CREATE TABLE idempotency_keys (
//	    scope       text NOT NULL,  -- whose request ids: e.g. client and method
//	    request_id  text NOT NULL,
//	    fingerprint bytea NOT NULL, -- the request's hash, without its request_id
//	    response    bytea,          -- the first response, once it is made
//	    created_at  timestamptz NOT NULL,
//	    PRIMARY KEY (scope, request_id)
//	);
//
// The layers of a service each take one part:
//
//   - its store's Idempotent calls Do, which claims the key, compares the request's
//     fingerprint, replays the stored response or runs create and stores what it returns, all in
//     one transaction, and its pruning calls DeleteExpired;
//   - its service's Idempotent calls Sealed, so the stored response (which may hold a secret
//     shown once) is sealed at rest;
//   - its gRPC handlers call Call, which fingerprints the request (Fingerprint) and turns the
//     response into bytes and back.
//
// A key lasts TTL (a day): after it, the request id is free again.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/proto"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/secretbox"
)

// TTL is how long a request id is kept, and its response replayed: the interval '24 hours' of
// the statements below.
const TTL = 24 * time.Hour

var (
	// ErrRequestIDReused is the InvalidArgument of a request id repeated with another request.
	ErrRequestIDReused = apierr.Invalid("request_id", "was already used for a different request")
	// ErrRequestInProgress is the Unavailable of a repeat that finds its key claimed but gone.
	ErrRequestInProgress = apierr.New(apierr.Unavailable, "REQUEST_IN_PROGRESS", "a request with this request_id is in progress; retry")
)

// DB is where Do begins its transaction: a *pgxpool.Pool, or a pgx.Tx (a savepoint).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Execer is where DeleteExpired deletes: a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Do runs create at most once per (scope, requestID): a repeat with the same fingerprint returns
// the first response without running create; another fingerprint is ErrRequestIDReused. create
// runs in the transaction that records the key and its response, so when it fails nothing is
// kept and a retry runs it again.
func Do(ctx context.Context, db DB, scope, requestID string, fingerprint []byte, create func(tx pgx.Tx) ([]byte, error)) (resp []byte, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// Expired keys give way to a new request with the same id.
		if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND request_id = $2 AND created_at < now() - interval '24 hours'`, scope, requestID); err != nil {
			return err
		}
		// A concurrent twin blocks here until the first commits or rolls back.
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (scope, request_id, fingerprint, created_at) VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING`, scope, requestID, fingerprint)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var fp, stored []byte
			if err := tx.QueryRow(ctx, `SELECT fingerprint, response FROM idempotency_keys WHERE scope = $1 AND request_id = $2`, scope, requestID).Scan(&fp, &stored); err != nil {
				if errors.Is(err, pgx.ErrNoRows) {
					return ErrRequestInProgress
				}
				return err
			}
			if string(fp) != string(fingerprint) {
				return ErrRequestIDReused
			}
			resp = stored
			return nil
		}
		resp, err = create(tx)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET response = $3 WHERE scope = $1 AND request_id = $2`, scope, requestID, resp)
		return err
	})
	return resp, err
}

// DeleteExpired deletes the keys first used more than TTL before at, returning the count.
func DeleteExpired(ctx context.Context, db Execer, at time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1::timestamptz - interval '24 hours'`, at)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Func is a layer's Idempotent: it runs fn at most once per (scope, requestID), with S (a store
// or a service) bound to the transaction that records the response, and returns fn's first
// response to repeats.
type Func[S any] func(ctx context.Context, scope, requestID string, fingerprint []byte, fn func(S) ([]byte, error)) ([]byte, error)

// Sealed runs fn through idempotent (a store's Idempotent), storing its response sealed with box
// and bound to (scope, requestID), and returns the response opened.
func Sealed[S any](ctx context.Context, box *secretbox.Box, idempotent Func[S], scope, requestID string, fingerprint []byte, fn func(S) ([]byte, error)) ([]byte, error) {
	aad := []byte(scope + "\x00" + requestID)
	sealed, err := idempotent(ctx, scope, requestID, fingerprint, func(tx S) ([]byte, error) {
		resp, err := fn(tx)
		if err != nil {
			return nil, err
		}
		return box.Seal(resp, aad), nil
	})
	if err != nil {
		return nil, err
	}
	return box.Open(sealed, aad)
}

// Call runs create through idempotent (a service's Idempotent) for the gRPC request req, whose
// fingerprint tells a true repeat from a reuse, and returns create's first response to repeats.
func Call[T proto.Message, S any](ctx context.Context, idempotent Func[S], scope, requestID string, req proto.Message, create func(S) (T, error)) (T, error) {
	var zero T
	raw, err := idempotent(ctx, scope, requestID, Fingerprint(req), func(s S) ([]byte, error) {
		resp, err := create(s)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(resp)
	})
	if err != nil {
		return zero, err
	}
	out := zero.ProtoReflect().New().Interface().(T)
	if err := proto.Unmarshal(raw, out); err != nil {
		return zero, err
	}
	return out, nil
}

// Fingerprint hashes a request without its request_id, to tell a true repeat from a reuse.
func Fingerprint(req proto.Message) []byte {
	c := proto.Clone(req)
	if fd := c.ProtoReflect().Descriptor().Fields().ByName("request_id"); fd != nil {
		c.ProtoReflect().Clear(fd)
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	sum := sha256.Sum256(b)
	return sum[:]
}
