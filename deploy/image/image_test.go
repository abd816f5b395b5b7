package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func build(t *testing.T, binary string) v1.Image {
	t.Helper()
	img, err := Build(Options{Binary: []byte(binary), CACerts: []byte("-----BEGIN CERTIFICATE-----\n"), Arch: "amd64", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestTheImageRunsPuenteAsANonRootUser(t *testing.T) {
	cfg, err := build(t, "#!binary").ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q: the manifests' runAsNonRoot needs a numeric non-root user", c.User)
	}
	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/usr/local/bin/puente" || len(c.Cmd) != 1 || c.Cmd[0] != "serve" {
		t.Errorf("Entrypoint %v Cmd %v", c.Entrypoint, c.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
}

func TestTheLayerHoldsTheBinaryCertificatesAndAWritableTmp(t *testing.T) {
	layers, err := build(t, "#!binary").Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	for name, mode := range map[string]int64{
		"usr/local/bin/puente":              0o755,
		"etc/ssl/certs/ca-certificates.crt": 0o644,
		"tmp/":                              0o1777,
		"etc/passwd":                        0o644,
	} {
		h, ok := got[name]
		if !ok {
			t.Errorf("no %s in the layer", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, h.Mode, mode)
		}
	}
}

func TestTheSameBinaryGivesTheSameImage(t *testing.T) {
	a, err := build(t, "#!binary").Digest()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := build(t, "#!binary").Digest()
	c, _ := build(t, "#!other").Digest()
	if a != b {
		t.Errorf("two builds of one binary: %s and %s", a, b)
	}
	if a == c {
		t.Error("another binary gives the same digest")
	}
}

func TestTheTarballLoadsBack(t *testing.T) {
	dir := t.TempDir()
	bin, certs, out := filepath.Join(dir, "puente"), filepath.Join(dir, "ca.crt"), filepath.Join(dir, "image.tar")
	writeFile(t, bin, "#!binary")
	writeFile(t, certs, "-----BEGIN CERTIFICATE-----\n")
	if err := run(bin, certs, "amd64", "registry.example/puente:1.2.3", out); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Config.Labels["org.opencontainers.image.version"]; v != "1.2.3" {
		t.Errorf("version label %q", v)
	}
	if err := run(bin, filepath.Join(dir, "missing.crt"), "amd64", "puente:x", out); err == nil {
		t.Error("an image without CA certificates is built")
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
