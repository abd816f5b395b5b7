package syncfy

// Config is how Puente reaches syncfy. Empty URL: the provider is off.
type Config struct {
	// URL is the API's base URL (the simulator's, under make run and in tests).
	URL string `env:"PUENTE_SYNCFY_URL"`
}

// Enabled reports whether the provider is configured.
func (c Config) Enabled() bool { return c.URL != "" }
