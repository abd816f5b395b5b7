package authtoken

import (
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// MaxTokenTTL is the longest any token this service signs lives (task tokens at most). A retired
// signing key stays published this long after its successor takes over.
const MaxTokenTTL = time.Hour

// Config is the authtoken service's configuration.
type Config struct {
	// Issuer (iss) and audience (aud) of every token.
	Issuer   string `env:"PUENTE_TOKEN_ISSUER" default:"puente"`
	Audience string `env:"PUENTE_TOKEN_AUDIENCE" default:"puente-api"`
	// AccessTokenTTL is the life of an access token, 5 to 15 minutes.
	AccessTokenTTL time.Duration `env:"PUENTE_ACCESS_TOKEN_TTL" default:"10m"`
	// RefreshFamilyTTL bounds a refresh-token family from its first grant; rotation does not extend it.
	RefreshFamilyTTL time.Duration `env:"PUENTE_REFRESH_TOKEN_TTL" default:"720h"`
	// WidgetSessionTTL is the life of the session a link token is exchanged for.
	WidgetSessionTTL time.Duration `env:"PUENTE_WIDGET_SESSION_TTL" default:"30m"`
	// KeyPublishLead is how long a new signing key is published before it signs, so that every
	// verifier's JWKS cache has it by then.
	KeyPublishLead time.Duration `env:"PUENTE_SIGNING_KEY_LEAD" default:"15m"`
	// KeyRotation is the age at which the signing key is rotated on its own; 0 turns that off.
	KeyRotation time.Duration `env:"PUENTE_SIGNING_KEY_ROTATION" default:"720h"`
	// HashKey (base64, 32 bytes) keys the HMAC under which API key, refresh and link token secrets
	// are stored.
	HashKey string `env:"PUENTE_HASH_KEY"`
	// EncryptionKeys ("id:base64key,...", first is primary) seal private keys and stored responses.
	EncryptionKeys string `env:"PUENTE_ENCRYPTION_KEYS"`
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Issuer == "" || c.Audience == "":
		return errors.New("PUENTE_TOKEN_ISSUER and PUENTE_TOKEN_AUDIENCE must be set")
	case c.AccessTokenTTL < 5*time.Minute || c.AccessTokenTTL > 15*time.Minute:
		return fmt.Errorf("PUENTE_ACCESS_TOKEN_TTL must be between 5m and 15m")
	case c.WidgetSessionTTL <= 0 || c.WidgetSessionTTL > MaxTokenTTL:
		return fmt.Errorf("PUENTE_WIDGET_SESSION_TTL must be between 1s and %s", MaxTokenTTL)
	case c.RefreshFamilyTTL < time.Hour:
		return fmt.Errorf("PUENTE_REFRESH_TOKEN_TTL must be at least 1h")
	case c.KeyPublishLead < 6*time.Minute:
		// Verifiers cache the JWKS for up to 5 minutes: a key must be published longer than
		// that before it signs.
		return fmt.Errorf("PUENTE_SIGNING_KEY_LEAD must be at least 6m")
	case c.KeyRotation != 0 && c.KeyRotation < time.Hour:
		return fmt.Errorf("PUENTE_SIGNING_KEY_ROTATION must be 0 (off) or at least 1h")
	case c.EncryptionKeys == "":
		return errors.New("PUENTE_ENCRYPTION_KEYS must be set")
	}
	if k, err := base64.StdEncoding.DecodeString(c.HashKey); err != nil || len(k) != 32 {
		return errors.New("PUENTE_HASH_KEY must be 32 bytes, base64")
	}
	return nil
}
