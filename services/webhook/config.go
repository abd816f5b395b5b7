package webhook

import (
	"errors"
	"time"

	"puente.dev/pkg/metrics"
)

// Config is the webhook service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal endpoint secrets.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
	// AllowInsecureURLs lets endpoints be http and on loopback or private addresses: for
	// development and tests only.
	AllowInsecureURLs bool `env:"PUENTE_WEBHOOK_ALLOW_INSECURE_URLS" default:"false"`
	// Timeout bounds one delivery attempt, connection to last byte.
	Timeout time.Duration `env:"PUENTE_WEBHOOK_TIMEOUT" default:"10s"`
	// RetryWindow is how long a delivery is retried before it is FAILED.
	RetryWindow time.Duration `env:"PUENTE_WEBHOOK_RETRY_WINDOW" default:"72h"`
	// RetryBase is the first retry's delay; each next one doubles, up to RetryMax, with jitter.
	RetryBase time.Duration `env:"PUENTE_WEBHOOK_RETRY_BASE" default:"30s"`
	RetryMax  time.Duration `env:"PUENTE_WEBHOOK_RETRY_MAX" default:"6h"`
	// Workers is how many deliveries run at once per process; PerEndpoint bounds how many of
	// them one endpoint may hold, so a slow endpoint cannot starve the others.
	Workers     int `env:"PUENTE_WEBHOOK_WORKERS" default:"16"`
	PerEndpoint int `env:"PUENTE_WEBHOOK_PER_ENDPOINT" default:"4"`
	// Lease is how long a delivery belongs to a worker; a worker that dies mid-delivery has it
	// retried after this (the receiver may then see it twice, with the same webhook-id).
	Lease time.Duration `env:"PUENTE_WEBHOOK_LEASE" default:"1m"`
	// Retention is how long events (and inbound webhooks) are kept (at least 30 days).
	Retention time.Duration `env:"PUENTE_EVENT_RETENTION" default:"720h"`
	// SandboxWebhookSecret (base64, at least 32 bytes) is the key the Sandbox provider signs its
	// webhooks to POST /v1/inbound/sandbox with; empty: not taken.
	SandboxWebhookSecret string `env:"PUENTE_SANDBOX_WEBHOOK_SECRET"`

	// Metrics, when set, counts every POST by result and every delivery that ends
	// (puente_webhook_*). Not from the environment: the process's own.
	Metrics *metrics.Metrics
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.EncryptionKeys == "":
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	case c.Timeout <= 0 || c.RetryWindow <= 0 || c.RetryBase <= 0 || c.RetryMax < c.RetryBase:
		return errors.New("PUENTE_WEBHOOK_TIMEOUT, _RETRY_WINDOW and _RETRY_BASE must be positive, _RETRY_MAX at least _RETRY_BASE")
	case c.Lease <= c.Timeout:
		return errors.New("PUENTE_WEBHOOK_LEASE must be longer than PUENTE_WEBHOOK_TIMEOUT")
	case c.Retention < 30*24*time.Hour:
		return errors.New("PUENTE_EVENT_RETENTION must be at least 720h (30 days)")
	case c.Workers < 1 || c.PerEndpoint < 1:
		return errors.New("PUENTE_WEBHOOK_WORKERS and PUENTE_WEBHOOK_PER_ENDPOINT must be at least 1")
	}
	return nil
}
