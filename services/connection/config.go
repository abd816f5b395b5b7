package connection

import "errors"

// Config is the connection service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal credentials, answers and
	// provider state.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
	// Sandbox enables the Sandbox provider (scripted users, no upstream).
	Sandbox bool `env:"PUENTE_SANDBOX" default:"true"`
	// Workers is how many background jobs (logins) this process runs at once.
	Workers int `env:"PUENTE_CONNECTION_WORKERS" default:"8"`
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.EncryptionKeys == "" {
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	}
	if c.Workers < 1 {
		return errors.New("PUENTE_CONNECTION_WORKERS must be at least 1")
	}
	return nil
}
