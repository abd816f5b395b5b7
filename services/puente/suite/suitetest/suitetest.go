// Package suitetest is the configuration tests run a whole suite with: fresh secrets, every
// service on loopback with random ports, the Sandbox on, and intervals short enough for tests.
// The suite's own end-to-end tests and those of packages built on it (the client) share it.
package suitetest

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"puente.dev/pkg/secretbox"
	"puente.dev/services/authtoken"
	"puente.dev/services/connection"
	"puente.dev/services/consent"
	"puente.dev/services/extraction"
	"puente.dev/services/puente/suite"
	syncs "puente.dev/services/sync"
	"puente.dev/services/webhook"
)

// Config returns a configuration over databaseURL, and its admin token.
func Config(databaseURL string) (suite.Config, string) {
	key := make([]byte, 32)
	rand.Read(key)
	admin := "padm_test_" + base64.RawURLEncoding.EncodeToString(key[:24])
	keys := secretbox.NewKeySpec("t1")
	hashKey := base64.StdEncoding.EncodeToString(key)
	cfg := suite.Config{
		DatabaseURL:    databaseURL,
		GRPCAddr:       "127.0.0.1:0",
		MetricsAddr:    "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		AdminToken:     admin,
		ServiceToken:   "psvc_test_" + base64.RawURLEncoding.EncodeToString(key[8:32]),
		MigrateOnStart: true,
		DrainTimeout:   5 * time.Second,
		Authtoken: authtoken.Config{
			Issuer: "puente-test", Audience: "puente-api",
			AccessTokenTTL: 10 * time.Minute, RefreshFamilyTTL: 720 * time.Hour, WidgetSessionTTL: 30 * time.Minute,
			KeyPublishLead: 15 * time.Minute,
			HashKey:        hashKey,
			EncryptionKeys: keys,
		},
		Consent: consent.Config{EncryptionKeys: keys},
		Connection: connection.Config{EncryptionKeys: keys, HashKey: hashKey,
			PublicURL: "http://puente.test", Sandbox: true, Workers: 4, MinPollInterval: time.Second},
		Extraction: extraction.Config{EncryptionKeys: keys, Sandbox: true, PurgeAfter: 24 * time.Hour,
			ProviderConcurrency: 16, Workers: 4},
		Sync: syncs.Config{EncryptionKeys: keys, InstitutionConcurrency: 8, DefaultInterval: 24 * time.Hour, Workers: 8, Lease: time.Minute,
			UpstreamTimeout: 30 * time.Minute, BatchGather: 200 * time.Millisecond},
		Webhook: webhook.Config{
			EncryptionKeys: keys, AllowInsecureURLs: true,
			Timeout: 2 * time.Second, RetryWindow: time.Hour, RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
			Workers: 8, PerEndpoint: 2, Lease: 5 * time.Second, Retention: 720 * time.Hour,
			SandboxWebhookSecret: hashKey,
		},
	}
	return cfg, admin
}
