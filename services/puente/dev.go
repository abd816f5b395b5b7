package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/config"
	"puente.dev/pkg/pglocal"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/puente/demo"
	"puente.dev/services/puente/suite"
)

// devCmd is `make run`: every service on a laptop, against DATABASE_URL or a Postgres it starts
// from the local server binaries, with secrets made once and kept in the data folder, and a
// sandbox client seeded so a newcomer can call the API at once.
func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	dataDir, err := devDataDir()
	if err != nil {
		return err
	}
	secrets, err := devSecrets(filepath.Join(dataDir, "dev.env"))
	if err != nil {
		return err
	}
	defaults := map[string]string{
		"PUENTE_GRPC_ADDR":    "127.0.0.1:9090",
		"PUENTE_HTTP_ADDR":    "127.0.0.1:8080",
		"PUENTE_METRICS_ADDR": "127.0.0.1:9464",
		"PUENTE_CORS_ORIGINS": "*",
		// A developer's webhook receiver is on their own machine.
		"PUENTE_WEBHOOK_ALLOW_INSECURE_URLS": "true",
		// The demo integrator's page, which embeds the Connect widget; "off" to go without.
		"PUENTE_DEMO_ADDR": "127.0.0.1:3000",
	}
	var lookup func(k string) (string, bool)
	lookup = func(k string) (string, bool) {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v, true
		}
		if v, ok := secrets[k]; ok {
			return v, true
		}
		if k == "PUENTE_PUBLIC_URL" {
			// Browsers reach the gateway where it listens, unless told otherwise.
			if addr, ok := lookup("PUENTE_HTTP_ADDR"); ok {
				return "http://" + addr, true
			}
		}
		v, ok := defaults[k]
		return v, ok
	}
	var cfg suite.Config
	if err := config.Load(&cfg, lookup); err != nil {
		return err
	}
	log := newLogger(stderr)
	if cfg.DatabaseURL == "" {
		cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dataDir, "postgres")})
		if err != nil {
			return fmt.Errorf("local Postgres: %w", err)
		}
		defer cluster.Stop()
		if err := ensureDatabase(ctx, cluster.URL("postgres"), "puente"); err != nil {
			return err
		}
		cfg.DatabaseURL = cluster.URL("puente")
		log.Info("local postgres", "dir", filepath.Join(dataDir, "postgres"))
	}
	if lookupBool(lookup, "PUENTE_DEV_SIMULATORS", true) {
		stop, err := startSimulators(ctx, &cfg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return serve(ctx, cfg, suite.Names, log, func(s *suite.Suite) error {
		demoAddr, _ := lookup("PUENTE_DEMO_ADDR")
		var demoOrigins []string
		if demoAddr != "off" {
			_, port, err := net.SplitHostPort(demoAddr)
			if err != nil {
				return fmt.Errorf("PUENTE_DEMO_ADDR: %w", err)
			}
			demoOrigins = []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
		}
		c, err := sandboxClient(ctx, s.GRPCAddr(), cfg.AdminToken, filepath.Join(dataDir, "sandbox-client.json"), demoOrigins)
		if err != nil {
			return fmt.Errorf("seed the sandbox client: %w", err)
		}
		rest := "http://" + s.HTTPAddr()
		demoLine := ""
		if demoAddr != "off" {
			demoURL, err := startDemo(ctx, demoAddr, demo.Config{
				PuenteURL: cfg.Connection.PublicURL, APIURL: rest, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
			})
			if err != nil {
				return err
			}
			demoLine = "\n  Demo      " + demoURL + "   (an integrator's page embedding the Connect widget)"
		}
		fmt.Fprintf(stdout, `
Puente is running.
  REST      %[1]s
  gRPC      %[2]s
  OpenAPI   %[1]s/openapi.json
  JWKS      %[1]s/.well-known/jwks.json%[7]s

Sandbox client (kept in %[5]s):
  client_id      %[3]s
  client_secret  %[4]s

  curl -s %[1]s/v1/oauth/token -u '%[3]s:%[4]s' -d grant_type=client_credentials

Admin token (PUENTE_ADMIN_TOKEN): in %[6]s
Stop with Ctrl-C; data stays for the next run (make db/reset wipes it).
`, rest, s.GRPCAddr(), c.ClientID, c.ClientSecret, filepath.Join(dataDir, "sandbox-client.json"), filepath.Join(dataDir, "dev.env"), demoLine)
		return nil
	})
}

// startDemo serves the demo integrator's page on addr until ctx ends, and returns its URL.
func startDemo(ctx context.Context, addr string, cfg demo.Config) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("demo page: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: demo.Handler(cfg), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// devDataDir is .data in the working directory, or, when the Postgres server user cannot reach it
// (a checkout under /root, run as root), a folder of this user's own under /var/tmp. Either way
// the folder must be ours and writable by no one else: it holds the dev secrets.
func devDataDir() (string, error) {
	if d := os.Getenv("PUENTE_DATA_DIR"); d != "" {
		return d, privateDir(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(wd, ".data")
	if err := privateDir(dir); err != nil {
		return "", err
	}
	if pglocal.Usable(filepath.Join(dir, "postgres")) != nil {
		sum := sha256.Sum256([]byte(dir))
		dir = filepath.Join("/var/tmp", fmt.Sprintf("puente-dev-%d-%s", os.Getuid(), hex.EncodeToString(sum[:6])))
		if err := privateDir(dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// privateDir makes dir (mode 0711: the Postgres server user must traverse it) or accepts an
// existing one only if it is a real folder, owned by us, that nobody else can write to. A
// folder in a shared place such as /var/tmp could otherwise be planted by another user.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder (a symlink?): refusing to keep secrets there", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user: refusing to keep secrets there", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others: refusing to keep secrets there", dir)
	}
	return nil
}

// readPrivate reads a file only if it is a regular file of ours that no one else can read.
func readPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.Mode().IsRegular() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is not a private file of this user: refusing to read it", path)
	}
	return io.ReadAll(f)
}

// writePrivate writes a file of mode 0600, never through a symlink.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// devSecrets reads the dev secrets file, making it on first use and adding any secret a newer
// Puente needs that an older file lacks.
func devSecrets(path string) (map[string]string, error) {
	raw, err := readPrivate(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	missing := false
	for k, make := range map[string]func() string{
		"PUENTE_HASH_KEY":               func() string { return randomB64(32) },
		"PUENTE_ENCRYPTION_KEYS":        func() string { return secretbox.NewKeySpec("dev1") },
		"PUENTE_ADMIN_TOKEN":            func() string { return "padm_" + randomB64URL(32) },
		"PUENTE_SERVICE_TOKEN":          func() string { return "psvc_" + randomB64URL(32) },
		"PUENTE_SANDBOX_WEBHOOK_SECRET": func() string { return randomB64(32) },
	} {
		if out[k] == "" {
			out[k], missing = make(), true
		}
	}
	if missing {
		var b strings.Builder
		b.WriteString("# Development secrets of `make run`. Never use them elsewhere.\n")
		for _, k := range slices.Sorted(maps.Keys(out)) {
			fmt.Fprintf(&b, "%s=%s\n", k, out[k])
		}
		if err := writePrivate(path, []byte(b.String())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to local Postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	}
	return err
}

type clientCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// sandboxClient returns the seeded client, creating it when the file is missing, its
// credentials no longer work (a reset database) or it predates the demo's origins.
func sandboxClient(ctx context.Context, grpcAddr, adminToken, path string, origins []string) (clientCredentials, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return clientCredentials{}, err
	}
	defer conn.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminToken)
	var c clientCredentials
	if b, err := readPrivate(path); err == nil && json.Unmarshal(b, &c) == nil {
		_, err := authtokenv1.NewTokenServiceClient(conn).CreateToken(ctx, &authtokenv1.CreateTokenRequest{
			GrantType: "client_credentials", ClientId: c.ClientID, ClientSecret: c.ClientSecret,
		})
		if err == nil {
			got, err := authtokenv1.NewClientServiceClient(conn).GetClient(actx, &authtokenv1.GetClientRequest{Id: c.ClientID})
			if err == nil && !slices.ContainsFunc(origins, func(o string) bool { return !slices.Contains(got.GetClient().GetAllowedOrigins(), o) }) {
				return c, nil
			}
		}
	}
	resp, err := authtokenv1.NewClientServiceClient(conn).CreateClient(actx, &authtokenv1.CreateClientRequest{
		Name: "Sandbox", RedirectUris: []string{"http://localhost:3000/callback"}, AllowedOrigins: origins,
	})
	if err != nil {
		return clientCredentials{}, err
	}
	c = clientCredentials{ClientID: resp.GetClient().GetId(), ClientSecret: resp.GetApiKey().GetSecret()}
	b, _ := json.MarshalIndent(c, "", "  ")
	return c, writePrivate(path, b)
}

// lookupBool reads a boolean setting, def when unset or unreadable.
func lookupBool(lookup func(string) (string, bool), key string, def bool) bool {
	v, ok := lookup(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def
	}
	return b
}
