package suite

import (
	"errors"

	gb "puente.dev/pkg/upstream/guiabolso"
	"puente.dev/services/connection"
	conngb "puente.dev/services/connection/guiabolso"
	"puente.dev/services/extraction"
	extgb "puente.dev/services/extraction/guiabolso"
	syncs "puente.dev/services/sync"
	syncgb "puente.dev/services/sync/guiabolso"
	"puente.dev/services/webhook/inbound"
)

// Guiabolso Connect (Brazil): REDIRECT logins through its hosted Connect page, accounts and
// transactions read with the user's tokens, and wallet-monitoring webhooks (a user's accounts
// synchronized, or not found) settling the sync service's batch refreshes. Each side has its own client (and token
// cache): they may run in different processes.
func init() {
	upstreams["guiabolso"] = upstream{
		enabled: func(c Config) bool { return c.Guiabolso.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := gb.New(s.cfg.Guiabolso, gb.Options{Logger: s.log})
			if err != nil {
				return nil, err
			}
			return conngb.New(c), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := gb.New(s.cfg.Guiabolso, gb.Options{Logger: s.log})
			if err != nil {
				return nil, err
			}
			return extgb.New(c), nil
		},
		inbound: func(s *Suite) (inbound.Scheme, error) {
			if s.cfg.Guiabolso.WebhookSecret == "" {
				return nil, errors.New("PUENTE_GUIABOLSO_WEBHOOK_SECRET is required for Guiabolso's webhooks")
			}
			// The key is the token registered with Guiabolso, as UTF-8 bytes.
			return inbound.Guiabolso{Key: []byte(s.cfg.Guiabolso.WebhookSecret), Tolerance: s.cfg.Guiabolso.WebhookTolerance}, nil
		},
		sync: func(s *Suite) (syncs.BatchProvider, error) {
			c, err := gb.New(s.cfg.Guiabolso, gb.Options{Logger: s.log})
			if err != nil {
				return nil, err
			}
			return syncgb.New(c), nil
		},
		// Wallet monitoring's "finished" and "notFound" settle the sync service's waits.
		events: []string{"sync"},
	}
}
