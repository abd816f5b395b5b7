package syncs

import (
	"errors"
	"time"
)

// Config is the sync service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal stored responses.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
	// InstitutionConcurrency is how many refreshes this process runs at once against one
	// institution.
	InstitutionConcurrency int `env:"PUENTE_SYNC_INSTITUTION_CONCURRENCY" default:"8"`
	// DefaultInterval is the time between a new schedule's refreshes: whole hours, 1h to 720h.
	DefaultInterval time.Duration `env:"PUENTE_SYNC_DEFAULT_INTERVAL" default:"24h"`
	// Workers is how many users (and scheduled refreshes) this process refreshes at once.
	Workers int `env:"PUENTE_SYNC_WORKERS" default:"16"`
	// Lease is how long a job (a user's refresh, a batch's fan-out) may run before another
	// process takes it over: after a crash, the batch resumes this long after.
	Lease time.Duration `env:"PUENTE_SYNC_LEASE" default:"2m"`
	// UpstreamTimeout is how long a user waits for a batch provider (Guiabolso) to say its
	// refresh finished before the consent ends ERROR UPSTREAM_TIMEOUT.
	UpstreamTimeout time.Duration `env:"PUENTE_SYNC_UPSTREAM_TIMEOUT" default:"30m"`
	// BatchGather is how long a batch provider's request waits for more of a sync's users to
	// join it.
	BatchGather time.Duration `env:"PUENTE_SYNC_BATCH_GATHER" default:"2s"`
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.EncryptionKeys == "" {
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	}
	if c.Lease < time.Second {
		return errors.New("PUENTE_SYNC_LEASE must be at least 1s")
	}
	if c.UpstreamTimeout < time.Second || c.UpstreamTimeout > 24*time.Hour {
		return errors.New("PUENTE_SYNC_UPSTREAM_TIMEOUT must be from 1s to 24h")
	}
	if c.BatchGather < 0 || c.BatchGather > time.Minute {
		return errors.New("PUENTE_SYNC_BATCH_GATHER must be from 0 to 1m")
	}
	if c.Workers < 1 {
		return errors.New("PUENTE_SYNC_WORKERS must be at least 1")
	}
	if c.InstitutionConcurrency < 1 {
		return errors.New("PUENTE_SYNC_INSTITUTION_CONCURRENCY must be at least 1")
	}
	// Schedules keep their interval in hours, as the API shows it.
	if c.DefaultInterval < time.Hour || c.DefaultInterval > MaxIntervalHours*time.Hour || c.DefaultInterval%time.Hour != 0 {
		return errors.New("PUENTE_SYNC_DEFAULT_INTERVAL must be whole hours, from 1h to 720h")
	}
	return nil
}
