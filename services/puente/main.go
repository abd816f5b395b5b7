// Command puente runs Puente's services.
//
//	puente [-service=all|name,...]        serve (the default command)
//	puente migrate [-service=...]         apply the selected services' migrations and exit
//	puente dev                            make run: a local Postgres, dev secrets, a sandbox client
//	puente admin create-client -name=...  operator commands over gRPC with PUENTE_ADMIN_TOKEN
//	puente keygen                         print fresh PUENTE_HASH_KEY and PUENTE_ENCRYPTION_KEYS
//
// Configuration comes from environment variables (see README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"puente.dev/pkg/config"
	"puente.dev/pkg/telemetry"
	"puente.dev/services/puente/suite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "puente:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(ctx, args, stderr)
	case "migrate":
		return migrateCmd(ctx, args, stderr)
	case "dev":
		return devCmd(ctx, args, stdout, stderr)
	case "admin":
		return adminCmd(ctx, args, stdout)
	case "keygen":
		return keygenCmd(stdout)
	}
	return fmt.Errorf("unknown command %q (serve, migrate, dev, admin, keygen)", cmd)
}

func loadConfig() (suite.Config, error) {
	var cfg suite.Config
	err := config.Load(&cfg, os.LookupEnv)
	return cfg, err
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(os.Getenv("PUENTE_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	return telemetry.NewLogger(w, level, os.Getenv("PUENTE_LOG_FORMAT") == "text")
}

func serviceFlag(fs *flag.FlagSet) *string {
	return fs.String("service", envOr("PUENTE_SERVICES", "all"), "services to run: all, or a comma-separated list of "+strings.Join(suite.Names, ", "))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("puente", flag.ContinueOnError)
	list := serviceFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	services, err := suite.Parse(*list)
	if err != nil {
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set (use `make run` or `puente dev` for a local database)")
	}
	return serve(ctx, cfg, services, newLogger(stderr), nil)
}

// serve runs the services until ctx ends, then drains them. ready, when set, is called once
// they serve.
func serve(ctx context.Context, cfg suite.Config, services []string, log *slog.Logger, ready func(*suite.Suite) error) error {
	shutdownTelemetry, err := telemetry.Setup(ctx, "puente")
	if err != nil {
		return err
	}
	defer shutdownTelemetry(context.WithoutCancel(ctx))
	s, err := suite.Start(ctx, cfg, services, log)
	if err != nil {
		return err
	}
	if ready != nil {
		if err := ready(s); err != nil {
			s.Shutdown(ctx)
			return err
		}
	}
	werr := s.Wait(ctx)
	log.Info("draining", "timeout", cfg.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	s.Shutdown(drainCtx)
	return werr
}

func migrateCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("puente migrate", flag.ContinueOnError)
	list := serviceFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	services, err := suite.Parse(*list)
	if err != nil {
		return err
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	if err := suite.Migrate(ctx, cfg, services); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "migrations applied:", strings.Join(services, ", "))
	return nil
}
