package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"puente.dev/deploy/manifest"
)

// readVariables matches where Puente's code reads an environment variable: a config struct's
// `env:"NAME"` tag, or os.Getenv / os.LookupEnv / the binary's envOr with a literal name.
var readVariables = regexp.MustCompile(`env:"([A-Z0-9_]+)"|(?:Getenv|LookupEnv|envOr)\("([A-Z0-9_]+)"`)

// variablesPuenteReads scans the product's Go sources (../pkg, ../services) for the
// environment variables it reads, so that the manifests are checked against the code rather
// than against a copy of the README's table.
func variablesPuenteReads(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, root := range []string{"../pkg", "../services"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range readVariables.FindAllStringSubmatch(string(src), -1) {
				names[m[1]+m[2]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", root, err)
		}
	}
	if !names["DATABASE_URL"] || !names["PUENTE_SERVICE_TOKEN"] {
		t.Fatalf("found %d variables in the sources, without DATABASE_URL or PUENTE_SERVICE_TOKEN: the scan is broken", len(names))
	}
	return names
}

// testSetsOnlyVariablesPuenteReads: a misspelt setting would be ignored silently (the default
// applies), so every variable the manifests set, in the ConfigMap or a container's env, must
// be one the code reads.
func testSetsOnlyVariablesPuenteReads(t *testing.T, set *manifest.Set, known map[string]bool) {
	for _, cm := range set.ConfigMaps {
		for name := range cm.Data {
			if !known[name] {
				t.Errorf("ConfigMap/%s sets %s, which Puente does not read", cm.Name, name)
			}
		}
	}
	for _, w := range set.Deployments {
		for _, c := range w.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if !known[e.Name] {
					t.Errorf("Deployment/%s sets %s, which Puente does not read", w.Name, e.Name)
				}
			}
		}
	}
	for _, j := range set.Jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if !known[e.Name] {
					t.Errorf("Job/%s sets %s, which Puente does not read", j.Name, e.Name)
				}
			}
		}
	}
}
