package boufin

// Config is how Puente reaches boufin. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests).
	URL string `env:"PUENTE_BOUFIN_URL"`
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }
