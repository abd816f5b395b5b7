package syncfy

import (
	"time"

	"puente.dev/pkg/metrics"
)

// Config is how Puente reaches syncfy. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests).
	URL string `env:"PUENTE_SYNCFY_URL"`
	// APIKey is Puente's Syncfy API key (sandbox or production): it manages users and sessions
	// and reads the catalogues. It never leaves the server.
	APIKey string `env:"PUENTE_SYNCFY_API_KEY"`
	// Timeout bounds one call to Syncfy (0: 30 s).
	Timeout time.Duration `env:"PUENTE_SYNCFY_TIMEOUT" default:"30s"`
	// RatePerSecond bounds calls from this process (0: RatePerSecond, Syncfy's documented 5/s).
	// Only a simulator may be called faster.
	RatePerSecond float64 `env:"PUENTE_SYNCFY_RATE_PER_SECOND"`
	// PollInterval is how long the connection service waits between two reads of a job's
	// status (0: PollAfter). Only a simulator should be polled faster.
	PollInterval time.Duration `env:"PUENTE_SYNCFY_POLL_INTERVAL" default:"1s"`

	// Metrics, when set, times every call (puente_upstream_request_duration_seconds). Not from
	// the environment: the process's own.
	Metrics *metrics.Metrics
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }
