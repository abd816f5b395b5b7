package klavi

import (
	"time"

	"puente.dev/pkg/metrics"
)

// Config is how Puente reaches klavi. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests), without /data/v1.
	URL string `env:"PUENTE_KLAVI_URL"`
	// AccessKey and SecretKey are the partner's key pair; SecretKey also signs Klavi's webhooks.
	AccessKey string `env:"PUENTE_KLAVI_ACCESS_KEY"`
	SecretKey string `env:"PUENTE_KLAVI_SECRET_KEY"`
	// RatePerSecond bounds calls to Klavi from this process (the TPS agreed with Klavi).
	RatePerSecond int `env:"PUENTE_KLAVI_RATE_PER_SECOND" default:"10"`
	// Timeout bounds one call.
	Timeout time.Duration `env:"PUENTE_KLAVI_TIMEOUT" default:"15s"`
	// PollInterval is how often a consent waiting for the user is polled, when no event webhook
	// comes first.
	PollInterval time.Duration `env:"PUENTE_KLAVI_POLL_INTERVAL" default:"10s"`
	// WebhookTolerance, when set, refuses webhooks whose X-Klavi-Timestamp is further from now
	// (the timestamp is not signed, so this is off by default).
	WebhookTolerance time.Duration `env:"PUENTE_KLAVI_WEBHOOK_TOLERANCE"`

	// Metrics, when set, times every call (puente_upstream_request_duration_seconds). Not from
	// the environment: the process's own.
	Metrics *metrics.Metrics
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }
