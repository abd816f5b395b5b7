package guiabolso

import (
	"time"

	"puente.dev/pkg/metrics"
)

// Config is how Puente reaches guiabolso. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests): the partner and
	// user event routes hang off it.
	URL string `env:"PUENTE_GUIABOLSO_URL"`
	// ConnectURL is the hosted Connect page users link on (empty: URL + DefaultConnectPath).
	ConnectURL string `env:"PUENTE_GUIABOLSO_CONNECT_URL"`
	// ClientID and ClientSecret are Puente's API key pair.
	ClientID     string `env:"PUENTE_GUIABOLSO_CLIENT_ID"`
	ClientSecret string `env:"PUENTE_GUIABOLSO_CLIENT_SECRET"`
	// WebhookSecret is the token registered with Guiabolso for the wallet-monitoring webhooks
	// (empty: POST /v1/inbound/guiabolso takes nothing).
	WebhookSecret string `env:"PUENTE_GUIABOLSO_WEBHOOK_SECRET"`
	// WebhookTolerance is how old a webhook's signed timestamp may be (zero: 5 minutes).
	WebhookTolerance time.Duration `env:"PUENTE_GUIABOLSO_WEBHOOK_TOLERANCE"`
	// ProducerTag is the sub-group of the client id sync requests name (empty: DEFAULT).
	ProducerTag string `env:"PUENTE_GUIABOLSO_PRODUCER_TAG"`
	// RatePerSecond bounds calls from this process (zero: DefaultRatePerSecond).
	RatePerSecond int `env:"PUENTE_GUIABOLSO_RATE_PER_SECOND"`
	// Timeout bounds one call (zero: 15 s, the official client's default).
	Timeout time.Duration `env:"PUENTE_GUIABOLSO_TIMEOUT"`

	// Metrics, when set, times every call (puente_upstream_request_duration_seconds). Not from
	// the environment: the process's own.
	Metrics *metrics.Metrics
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// ConnectPage is the hosted Connect page's URL.
func (c Config) ConnectPage() string {
	if c.ConnectURL != "" {
		return c.ConnectURL
	}
	return trimSlash(c.URL) + DefaultConnectPath
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
