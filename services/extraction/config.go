package extraction

import (
	"errors"
	"time"
)

// Config is the extraction service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal identities and stored responses.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
	// Sandbox enables the Sandbox provider's adapter.
	Sandbox bool `env:"PUENTE_SANDBOX" default:"true"`
	// PurgeAfter is how long the data of a consent that was revoked, expired or rejected is
	// kept before it is deleted: long enough for refreshes in flight to settle, short enough
	// that a user's "stop" means it.
	PurgeAfter time.Duration `env:"PUENTE_EXTRACTION_PURGE_AFTER" default:"24h"`
	// ProviderConcurrency bounds the upstream reads this process makes at once per provider.
	ProviderConcurrency int `env:"PUENTE_EXTRACTION_PROVIDER_CONCURRENCY" default:"16"`
	// Workers is how many background jobs (extractions, reports, purges) this process runs at once.
	Workers int `env:"PUENTE_EXTRACTION_WORKERS" default:"8"`
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.EncryptionKeys == "":
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	case c.PurgeAfter < 0:
		return errors.New("PUENTE_EXTRACTION_PURGE_AFTER must not be negative")
	case c.ProviderConcurrency < 1:
		return errors.New("PUENTE_EXTRACTION_PROVIDER_CONCURRENCY must be at least 1")
	case c.Workers < 1:
		return errors.New("PUENTE_EXTRACTION_WORKERS must be at least 1")
	}
	return nil
}
