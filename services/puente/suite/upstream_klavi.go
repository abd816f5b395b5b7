package suite

import (
	kl "puente.dev/pkg/upstream/klavi"
	"puente.dev/services/connection"
	connklavi "puente.dev/services/connection/klavi"
	"puente.dev/services/extraction"
	extklavi "puente.dev/services/extraction/klavi"
	"puente.dev/services/webhook/inbound"
)

// Klavi Link (Brazil, Open Finance): REDIRECT logins through an Open Finance consent, its status
// polled and hinted by event webhooks (to connection), and reports pushed by webhook (to
// extraction). Each side has its own client (and access-token cache): they may run in different
// processes. Both webhooks are signed with the partner's secretKey.
func init() {
	upstreams["klavi"] = upstream{
		enabled: func(c Config) bool { return c.Klavi.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := kl.New(s.cfg.Klavi, kl.Options{Logger: s.log})
			if err != nil {
				return nil, err
			}
			return connklavi.New(c, s.cfg.Klavi.PollInterval), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := kl.New(s.cfg.Klavi, kl.Options{Logger: s.log})
			if err != nil {
				return nil, err
			}
			return extklavi.New(c), nil
		},
		inbound: func(s *Suite) (inbound.Scheme, error) {
			return inbound.Klavi{Key: []byte(s.cfg.Klavi.SecretKey), Tolerance: s.cfg.Klavi.WebhookTolerance}, nil
		},
		events: []string{"connection", "extraction"},
	}
}
