package boufin

import (
	"time"

	"puente.dev/pkg/metrics"
)

// Config is how Puente reaches boufin. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests).
	URL string `env:"PUENTE_BOUFIN_URL"`
	// AppURL is the Boufin Connect app the user's browser is sent to (the iframe's appUrl,
	// supplied by Boufin per environment). Empty: URL + DefaultAppPath.
	AppURL string `env:"PUENTE_BOUFIN_APP_URL"`
	// APIKey is the partner's x-api-key (server side only, never sent to a browser).
	APIKey string `env:"PUENTE_BOUFIN_API_KEY"`
	// ClientID is the clientId Boufin gave this integration in its initial configuration.
	ClientID string `env:"PUENTE_BOUFIN_CLIENT_ID"`
	// Product identifiers (opaque to Puente) of the consent products each Puente product reads.
	ProductAccounts     string `env:"PUENTE_BOUFIN_PRODUCT_ACCOUNTS" default:"cuentas"`
	ProductTransactions string `env:"PUENTE_BOUFIN_PRODUCT_TRANSACTIONS" default:"movimientos"`
	ProductIdentity     string `env:"PUENTE_BOUFIN_PRODUCT_IDENTITY" default:"validacion-identidad"`
	// Timeout bounds one upstream call (0: 30 s).
	Timeout time.Duration `env:"PUENTE_BOUFIN_TIMEOUT" default:"30s"`
	// RatePerSecond bounds calls from this process (0: unbounded; Boufin publishes no limit).
	RatePerSecond int `env:"PUENTE_BOUFIN_RATE_PER_SECOND" default:"0"`
	// PollInterval is the first wait before asking again about a product still running
	// (doubling, at most PollAttempts asks per read; 0: 500 ms).
	PollInterval time.Duration `env:"PUENTE_BOUFIN_POLL_INTERVAL" default:"500ms"`
	PollAttempts int           `env:"PUENTE_BOUFIN_POLL_ATTEMPTS" default:"5"`

	// Metrics, when set, times every call (puente_upstream_request_duration_seconds). Not from
	// the environment: the process's own.
	Metrics *metrics.Metrics
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// withDefaults fills what a Config built in code (tests) leaves empty.
func (c Config) withDefaults() Config {
	if c.AppURL == "" {
		c.AppURL = trimSlash(c.URL) + DefaultAppPath
	}
	if c.ProductAccounts == "" {
		c.ProductAccounts = DefaultProductAccounts
	}
	if c.ProductTransactions == "" {
		c.ProductTransactions = DefaultProductTransactions
	}
	if c.ProductIdentity == "" {
		c.ProductIdentity = DefaultProductIdentity
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.PollAttempts <= 0 {
		c.PollAttempts = 5
	}
	return c
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
