package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/config"
	"puente.dev/pkg/pglocal"
	"puente.dev/pkg/secretbox"
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
		"PUENTE_CORS_ORIGINS": "*",
	}
	lookup := func(k string) (string, bool) {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v, true
		}
		if v, ok := secrets[k]; ok {
			return v, true
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
	return serve(ctx, cfg, suite.Names, log, func(s *suite.Suite) error {
		c, err := sandboxClient(ctx, s.GRPCAddr(), cfg.AdminToken, filepath.Join(dataDir, "sandbox-client.json"))
		if err != nil {
			return fmt.Errorf("seed the sandbox client: %w", err)
		}
		rest := "http://" + s.HTTPAddr()
		fmt.Fprintf(stdout, `
Puente is running.
  REST      %[1]s
  gRPC      %[2]s
  OpenAPI   %[1]s/openapi.json
  JWKS      %[1]s/.well-known/jwks.json

Sandbox client (kept in %[5]s):
  client_id      %[3]s
  client_secret  %[4]s

  curl -s %[1]s/v1/oauth/token -u '%[3]s:%[4]s' -d grant_type=client_credentials

Admin token (PUENTE_ADMIN_TOKEN): in %[6]s
Stop with Ctrl-C; data stays for the next run (make db/reset wipes it).
`, rest, s.GRPCAddr(), c.ClientID, c.ClientSecret, filepath.Join(dataDir, "sandbox-client.json"), filepath.Join(dataDir, "dev.env"))
		return nil
	})
}

// devDataDir is .data in the working directory, or, when the Postgres server user cannot reach it
// (a checkout under /root, run as root), a folder of its own under /var/tmp.
func devDataDir() (string, error) {
	if d := os.Getenv("PUENTE_DATA_DIR"); d != "" {
		return d, os.MkdirAll(d, 0o700)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	// Traversable, not listable: the Postgres server user must reach its folder inside.
	dir := filepath.Join(wd, ".data")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return "", err
	}
	if pglocal.Usable(filepath.Join(dir, "postgres")) != nil {
		sum := sha256.Sum256([]byte(dir))
		dir = filepath.Join("/var/tmp", "puente-dev-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// devSecrets reads the dev secrets file, making it (mode 0600) on first use.
func devSecrets(path string) (map[string]string, error) {
	out := map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		content := fmt.Sprintf("# Development secrets of `make run`. Never use them elsewhere.\nPUENTE_HASH_KEY=%s\nPUENTE_ENCRYPTION_KEYS=%s\nPUENTE_ADMIN_TOKEN=padm_%s\n",
			randomB64(32), secretbox.NewKeySpec("dev1"), randomB64URL(32))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return nil, err
		}
		return devSecrets(path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out, sc.Err()
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

// sandboxClient returns the seeded client, creating it when the file is missing or its
// credentials no longer work (a reset database).
func sandboxClient(ctx context.Context, grpcAddr, adminToken, path string) (clientCredentials, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return clientCredentials{}, err
	}
	defer conn.Close()
	var c clientCredentials
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c) == nil {
		_, err := authtokenv1.NewTokenServiceClient(conn).CreateToken(ctx, &authtokenv1.CreateTokenRequest{
			GrantType: "client_credentials", ClientId: c.ClientID, ClientSecret: c.ClientSecret,
		})
		if err == nil {
			return c, nil
		}
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminToken)
	resp, err := authtokenv1.NewClientServiceClient(conn).CreateClient(actx, &authtokenv1.CreateClientRequest{
		Name: "Sandbox", RedirectUris: []string{"http://localhost:3000/callback"},
	})
	if err != nil {
		return clientCredentials{}, err
	}
	c = clientCredentials{ClientID: resp.GetClient().GetId(), ClientSecret: resp.GetApiKey().GetSecret()}
	b, _ := json.MarshalIndent(c, "", "  ")
	return c, os.WriteFile(path, b, 0o600)
}
