package manifest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"puente.dev/deploy/manifest"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: app
          image: api:1
          readinessProbe:
            grpc: {port: 9090}
`

func TestParseDecodesIntoAPITypes(t *testing.T) {
	set, err := manifest.Parse([]byte(deployment + "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Deployments) != 1 || len(set.ServiceAccounts) != 1 {
		t.Fatalf("got %d Deployments and %d ServiceAccounts, want 1 and 1", len(set.Deployments), len(set.ServiceAccounts))
	}
	probe := set.Deployments[0].Spec.Template.Spec.Containers[0].ReadinessProbe
	if probe == nil || probe.GRPC == nil || probe.GRPC.Port != 9090 {
		t.Errorf("readiness probe decoded as %+v, want grpc on 9090", probe)
	}
}

func TestParseRefusesWhatTheAPIServerWouldDropOrReject(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"misspelt field", strings.Replace(deployment, "readinessProbe", "readinesProbe", 1), "readinesProbe"},
		{"field in the wrong case", strings.Replace(deployment, "readinessProbe", "ReadinessProbe", 1), "ReadinessProbe"},
		{"field at the wrong level", strings.Replace(deployment, "      containers:", "      image: api:1\n      containers:", 1), "image"},
		{"duplicate key", strings.Replace(deployment, "  name: api\n", "  name: api\n  name: web\n", 1), "name"},
		{"wrong type", strings.Replace(deployment, "spec:\n  selector", "spec:\n  replicas: two\n  selector", 1), "replicas"},
		{"kind without a Go type", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "Widget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestBuildFailsOnAStrictDecodeError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "kustomization.yaml", "resources: [deployment.yaml]\n")
	write(t, dir, "deployment.yaml", strings.Replace(deployment, "readinessProbe", "readynessProbe", 1))
	_, err := manifest.Build(dir)
	if err == nil || !strings.Contains(err.Error(), "Deployment/api") || !strings.Contains(err.Error(), "readynessProbe") {
		t.Fatalf("Build: %v, want an error naming Deployment/api and readynessProbe", err)
	}
	write(t, dir, "deployment.yaml", deployment)
	set, err := manifest.Build(dir)
	if err != nil {
		t.Fatalf("Build of the fixed kustomization: %v", err)
	}
	if len(set.Deployments) != 1 {
		t.Fatalf("Build of the fixed kustomization: %d Deployments, want 1", len(set.Deployments))
	}
}

func TestBuildFailsOnAKustomizeError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "kustomization.yaml", "resources: [missing.yaml]\n")
	if _, err := manifest.Build(dir); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("Build: %v, want an error naming missing.yaml", err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
