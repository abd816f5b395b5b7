// Package postgres opens a service's pgx pool and applies its migrations. Each service owns one
// schema and one role of the same name (prefixed "puente_"): its connections SET ROLE to it, so a
// service cannot read another's tables even when they share a database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var schemaName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// Role returns the role that owns schema.
func Role(schema string) string { return "puente_" + schema }

// Open returns a pool whose connections use schema and act as its role. Migrate must have run.
func Open(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("postgres: bad schema name %q", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("postgres: cannot parse the database URL") // the URL may hold a password
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default (the number of CPUs, at least 4) is tight for a service whose job
		// workers, change listener and API calls share one pool.
		cfg.MaxConns = max(cfg.MaxConns, 16)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "puente-" + schema
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{Role(schema)}.Sanitize())
		return err
	}
	cfg.ConnConfig.Tracer = tracer{}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool for %s: %w", schema, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect for %s: %w", schema, err)
	}
	return pool, nil
}

// IsUniqueViolation reports whether err is a unique-constraint violation, naming the constraint.
func IsUniqueViolation(err error) (constraint string, ok bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName, true
	}
	return "", false
}
