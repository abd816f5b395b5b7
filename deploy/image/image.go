// Command image builds Puente's container image without a Docker engine: the static puente
// binary, CA certificates, a non-root user and a writable /tmp on an empty base, written as a
// tarball that `docker load`, `podman load` and `crane push` take. The build is reproducible:
// the same binary gives the same image digest.
//
//	go run puente.dev/deploy/image -binary .bin/puente-linux-amd64 -tag puente:dev -out .bin/puente-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// UID is the unprivileged user the image runs as (the manifests' runAsUser).
const UID = 65532

// Options say what goes into the image.
type Options struct {
	Binary  []byte // the statically linked puente binary
	CACerts []byte // PEM bundle of trusted CAs, for the upstream providers' HTTPS
	Arch    string // GOARCH of the binary
	Version string // the org.opencontainers.image.version label
}

// epoch is every file's and the image's time, so that a build is reproducible.
var epoch = time.Unix(0, 0).UTC()

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	if len(o.Binary) == 0 {
		return nil, fmt.Errorf("image: no binary")
	}
	if len(o.CACerts) == 0 {
		return nil, fmt.Errorf("image: no CA certificates (the providers are reached over HTTPS)")
	}
	files := map[string]file{
		"etc/":                              {mode: 0o755, dir: true},
		"etc/passwd":                        {mode: 0o644, body: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)},
		"etc/group":                         {mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", UID)},
		"etc/ssl/":                          {mode: 0o755, dir: true},
		"etc/ssl/certs/":                    {mode: 0o755, dir: true},
		"etc/ssl/certs/ca-certificates.crt": {mode: 0o644, body: o.CACerts},
		"home/":                             {mode: 0o755, dir: true},
		"home/nonroot/":                     {mode: 0o700, dir: true, uid: UID},
		"tmp/":                              {mode: 0o1777, dir: true},
		"usr/":                              {mode: 0o755, dir: true},
		"usr/local/":                        {mode: 0o755, dir: true},
		"usr/local/bin/":                    {mode: 0o755, dir: true},
		"usr/local/bin/puente":              {mode: 0o755, body: o.Binary},
	}
	layerTar, err := tarOf(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image: append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS, cfg.Created = o.Arch, "linux", v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{"/usr/local/bin/puente"}
	cfg.Config.Cmd = []string{"serve"}
	cfg.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cfg.Config.WorkingDir = "/home/nonroot"
	cfg.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "9090/tcp": {}}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "puente",
		"org.opencontainers.image.version": o.Version,
	}
	return mutate.ConfigFile(img, cfg)
}

type file struct {
	mode int64
	dir  bool
	uid  int
	body []byte
}

// tarOf writes files in name order, owned by root (or uid), all at epoch.
func tarOf(files map[string]file) ([]byte, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.mode, ModTime: epoch, Uid: f.uid, Gid: f.uid, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func main() {
	binary := flag.String("binary", "", "the static puente binary (CGO_ENABLED=0)")
	certs := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to put in the image")
	arch := flag.String("arch", "amd64", "GOARCH of the binary")
	tag := flag.String("tag", "puente:dev", "the image's name and tag in the tarball")
	out := flag.String("out", "puente-image.tar", "where to write the tarball")
	flag.Parse()
	if err := run(*binary, *certs, *arch, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(binaryPath, certsPath, arch, tag, out string) error {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	certs, err := os.ReadFile(certsPath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image: tag: %w", err)
	}
	img, err := Build(Options{Binary: bin, CACerts: certs, Arch: arch, Version: ref.TagStr()})
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("image: write %s: %w", out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s\t%s\t%s\n", out, ref.Name(), digest)
	return nil
}
