package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/config"
)

type sample struct {
	Addr    string        `env:"T_ADDR" default:":9090"`
	Debug   bool          `env:"T_DEBUG"`
	Workers int           `env:"T_WORKERS" default:"4"`
	TTL     time.Duration `env:"T_TTL" default:"15m"`
	Origins []string      `env:"T_ORIGINS"`
	Inner   struct {
		Name string `env:"T_NAME" default:"x"`
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadAppliesDefaultsAndOverrides(t *testing.T) {
	var c sample
	require.NoError(t, config.Load(&c, env(map[string]string{
		"T_DEBUG": "true", "T_TTL": "90s", "T_ORIGINS": "https://a.example, https://b.example,", "T_NAME": "y",
	})))
	require.Equal(t, ":9090", c.Addr)
	require.True(t, c.Debug)
	require.Equal(t, 4, c.Workers)
	require.Equal(t, 90*time.Second, c.TTL)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, c.Origins)
	require.Equal(t, "y", c.Inner.Name)
}

func TestLoadNamesTheVariableButNotTheValue(t *testing.T) {
	var c sample
	err := config.Load(&c, env(map[string]string{"T_WORKERS": "s3cr3t"}))
	require.ErrorContains(t, err, "T_WORKERS")
	require.NotContains(t, err.Error(), "s3cr3t")
}
