package postgres

import (
	"io/fs"
	"maps"
	"slices"
	"testing/fstest"
)

// WithMigrations returns base (a service's embedded migrations) plus more, by file name: the
// migrations shared packages publish as SQL (pkg/jobs, pkg/outbox), numbered by the service.
func WithMigrations(base fs.FS, more map[string]string) (fs.FS, error) {
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(base, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(base, e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	for _, name := range slices.Sorted(maps.Keys(more)) {
		out[name] = &fstest.MapFile{Data: []byte(more[name])}
	}
	return out, nil
}
