package connection

import (
	"encoding/base64"
	"errors"
	"net/url"
	"time"

	"puente.dev/pkg/metrics"
)

// Config is the connection service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal credentials, answers and
	// provider state.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
	// Sandbox enables the Sandbox provider (scripted users, no upstream).
	Sandbox bool `env:"PUENTE_SANDBOX" default:"true"`
	// PublicURL is where browsers reach Puente's REST API; redirect institutions send users back
	// to PublicURL/v1/connections:callback.
	PublicURL string `env:"PUENTE_PUBLIC_URL" default:"http://127.0.0.1:8080"`
	// HashKey (base64, 32 bytes) keys the hash under which redirect states are stored.
	HashKey string `env:"PUENTE_HASH_KEY"`
	// Workers is how many background jobs (logins) this process runs at once.
	Workers int `env:"PUENTE_CONNECTION_WORKERS" default:"8"`
	// MinPollInterval is the least a login waits between two polls of its upstream, whatever
	// the provider asks: it bounds the load one login puts on an upstream (tests lower it).
	MinPollInterval time.Duration `env:"PUENTE_CONNECTION_MIN_POLL_INTERVAL" default:"1s"`

	// Metrics, when set, counts finished connections (puente_connections_total). Not from the
	// environment: the process's own.
	Metrics *metrics.Metrics
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.EncryptionKeys == "" {
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	}
	if k, err := base64.StdEncoding.DecodeString(c.HashKey); err != nil || len(k) != 32 {
		return errors.New("PUENTE_HASH_KEY must be 32 bytes, base64")
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("PUENTE_PUBLIC_URL must be an absolute http(s) URL")
	}
	if c.Workers < 1 {
		return errors.New("PUENTE_CONNECTION_WORKERS must be at least 1")
	}
	if c.MinPollInterval < 10*time.Millisecond || c.MinPollInterval > time.Minute {
		return errors.New("PUENTE_CONNECTION_MIN_POLL_INTERVAL must be between 10ms and 1m")
	}
	return nil
}
