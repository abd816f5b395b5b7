package powens

import (
	"time"

	"puente.dev/pkg/metrics"
)

// Config is how Puente reaches powens. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL, https://<domain>.biapi.pro/2.0 (the simulator's, under make run
	// and in tests).
	URL string `env:"PUENTE_POWENS_URL"`
	// ClientID and ClientSecret are the domain's client application: they turn a temporary user
	// token into a permanent one (POST /auth/token/access).
	ClientID     string `env:"PUENTE_POWENS_CLIENT_ID"`
	ClientSecret string `env:"PUENTE_POWENS_CLIENT_SECRET"`
	// WebhookSecret is the secret_key of the hmac_signature webhook auth provider (console or
	// POST /webhooks/auth); empty: Powens webhooks are not taken.
	WebhookSecret string `env:"PUENTE_POWENS_WEBHOOK_SECRET"`
	// WebhookPath is the path of the URL registered for Powens webhooks in the console: it is
	// part of what Powens signs.
	WebhookPath string `env:"PUENTE_POWENS_WEBHOOK_PATH" default:"/v1/inbound/powens"`
	// RatePerSecond bounds calls from this process (Powens publishes no limit).
	RatePerSecond int `env:"PUENTE_POWENS_RATE_PER_SECOND" default:"20"`
	// Timeout bounds one call; creating a connection checks the credentials at the bank
	// synchronously, so it is long.
	Timeout time.Duration `env:"PUENTE_POWENS_TIMEOUT" default:"2m"`
	// PollInterval is the wait between polls of a decoupled validation (in the bank's app).
	PollInterval time.Duration `env:"PUENTE_POWENS_POLL_INTERVAL" default:"3s"`

	// Metrics, when set, times every call (puente_upstream_request_duration_seconds). Not from
	// the environment: the process's own.
	Metrics *metrics.Metrics
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }
