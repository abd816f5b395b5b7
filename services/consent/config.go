package consent

import "errors"

// Config is the consent service's configuration.
type Config struct {
	// EncryptionKeys ("id:base64key,...", first is primary) seal stored responses.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.EncryptionKeys == "" {
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	}
	return nil
}
