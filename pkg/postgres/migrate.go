package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var migrationName = regexp.MustCompile(`^(\d{3})_[a-z0-9_]+\.up\.sql$`)

// Migrate applies the NNN_name.up.sql files of migrations (in order, each in its own transaction)
// to schema, creating the schema and its role on first use. Concurrent callers (several replicas
// starting at once) are serialised by an advisory lock; a migration is applied exactly once.
//
// The connecting user needs CREATEROLE (or to be superuser) the first time.
func Migrate(ctx context.Context, url, schema string, migrations fs.FS) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("postgres: bad schema name %q", schema)
	}
	files, err := list(migrations)
	if err != nil {
		return err
	}
	// The URL is the services' own, which may carry pool settings (pool_max_conns): parsed as a
	// pool's, they are taken out instead of being sent to the server, which refuses them.
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", schema, err)
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return fmt.Errorf("postgres: connect to migrate %s: %w", schema, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	h := fnv.New64a()
	h.Write([]byte("puente-migrate:" + schema))
	lock := int64(h.Sum64())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lock); err != nil {
		return fmt.Errorf("postgres: lock migrations of %s: %w", schema, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lock)

	role, ident := pgx.Identifier{Role(schema)}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	if err := createRole(ctx, conn, Role(schema)); err != nil {
		return err
	}
	// Like roles, memberships are global to the cluster: a concurrent grant of the same role
	// (another database migrating) is a duplicate, not a failure.
	if _, err := conn.Exec(ctx, "GRANT "+role+" TO CURRENT_USER"); err != nil && !isDuplicate(err) {
		return fmt.Errorf("postgres: grant %s: %w", Role(schema), err)
	}
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + ident + " AUTHORIZATION " + role,
		"CREATE TABLE IF NOT EXISTS " + ident + ".schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		"ALTER TABLE " + ident + ".schema_migrations OWNER TO " + role,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("postgres: prepare schema %s: %w", schema, err)
		}
	}
	var applied []int
	rows, _ := conn.Query(ctx, "SELECT version FROM "+ident+".schema_migrations")
	applied, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("postgres: read applied migrations of %s: %w", schema, err)
	}
	for _, f := range files {
		if slices.Contains(applied, f.version) {
			continue
		}
		sql, err := fs.ReadFile(migrations, f.path)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", f.version, path.Base(f.path))
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s of %s: %w", path.Base(f.path), schema, err)
		}
	}
	return nil
}

// createRole creates a NOLOGIN role unless it exists. Roles are global to the cluster, so two
// databases migrating at once (parallel tests) may race: the loser sees a duplicate and goes on.
func createRole(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look up role %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" NOLOGIN")
	if isDuplicate(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: create role %s: %w", name, err)
	}
	return nil
}

type migration struct {
	version int
	path    string
}

func list(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("postgres: read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("postgres: migration %q is not named NNN_name.up.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if len(out) > 0 && out[len(out)-1].version == v {
			return nil, fmt.Errorf("postgres: two migrations numbered %03d", v)
		}
		out = append(out, migration{version: v, path: e.Name()})
	}
	return out, nil
}

// isDuplicate reports whether err says an object exists already (duplicate_object, or the
// unique_violation a catalog race yields).
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505")
}
