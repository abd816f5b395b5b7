package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestConfigFromEnv(t *testing.T) {
	c, err := configFromLookup(env(map[string]string{
		"PUENTE_CLIENT_TARGET":         "dns:///puente.internal:9090",
		"PUENTE_CLIENT_CONSENT_TARGET": "dns:///puente-consent.puente.svc.cluster.local:9090",
		"PUENTE_CLIENT_ID":             "cli_1",
		"PUENTE_CLIENT_SECRET":         "psk_1",
		"PUENTE_CLIENT_INSECURE":       "true",
		"PUENTE_CLIENT_TIMEOUT":        "3s",
	}))
	require.NoError(t, err)
	assert.Equal(t, "cli_1", c.ClientID)
	assert.Equal(t, "psk_1", c.ClientSecret)
	assert.True(t, c.Insecure)
	assert.Nil(t, c.TLS)
	assert.Equal(t, 3*time.Second, c.Timeout)
	targets, err := c.targets()
	require.NoError(t, err)
	assert.Equal(t, "dns:///puente-consent.puente.svc.cluster.local:9090", targets["consent"])
	assert.Equal(t, "dns:///puente.internal:9090", targets["sync"])
}

func TestConfigFromEnvTLS(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, selfSigned(t), 0o600))

	c, err := configFromLookup(env(map[string]string{
		"PUENTE_CLIENT_TARGET":          "dns:///puente:9090",
		"PUENTE_CLIENT_TLS_CA_FILE":     caFile,
		"PUENTE_CLIENT_TLS_SERVER_NAME": "puente.internal",
	}))
	require.NoError(t, err)
	require.NotNil(t, c.TLS)
	assert.Equal(t, "puente.internal", c.TLS.ServerName)
	assert.NotNil(t, c.TLS.RootCAs)

	_, err = configFromLookup(env(map[string]string{"PUENTE_CLIENT_TLS": "true", "PUENTE_CLIENT_INSECURE": "true"}))
	assert.Error(t, err, "TLS and plaintext at once is refused")
	_, err = configFromLookup(env(map[string]string{"PUENTE_CLIENT_TLS_CERT_FILE": caFile}))
	assert.Error(t, err, "a certificate without its key is refused")
	_, err = configFromLookup(env(map[string]string{"PUENTE_CLIENT_TLS_CA_FILE": filepath.Join(dir, "missing.pem")}))
	assert.Error(t, err)
}

func TestRefreshWindow(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ life, ahead time.Duration }{
		{10 * time.Minute, time.Minute},      // a minute and a tenth agree
		{time.Hour, 6 * time.Minute},         // a tenth is longer
		{90 * time.Second, 45 * time.Second}, // never before half its life
	} {
		tok := accessToken{fetched: at, expires: at.Add(tc.life)}
		assert.Equal(t, tc.ahead, tok.expires.Sub(tok.refreshAt()), "life %s", tc.life)
	}
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
