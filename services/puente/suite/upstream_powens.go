package suite

import (
	pw "puente.dev/pkg/upstream/powens"
	"puente.dev/services/connection"
	connpowens "puente.dev/services/connection/powens"
	"puente.dev/services/extraction"
	extpowens "puente.dev/services/extraction/powens"
	"puente.dev/services/webhook/inbound"
)

// Powens (France/EU, ex Budget Insight), custom connection protocol: CREDENTIALS logins for
// credentials connectors and REDIRECT logins through /webauth for webauth connectors, each with
// its own Powens user whose permanent token the login state keeps for extraction. Webhooks
// (CONNECTION_SYNCED, ...) name Powens' user and connection ids, which the connection service
// maps back to the login that holds them and polls at once.
func init() {
	upstreams["powens"] = upstream{
		enabled: func(c Config) bool { return c.Powens.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := pw.NewClient(s.cfg.Powens, s.log, nil)
			if err != nil {
				return nil, err
			}
			return connpowens.New(c, connpowens.Options{PollAfter: s.cfg.Powens.PollInterval}), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := pw.NewClient(s.cfg.Powens, s.log, nil)
			if err != nil {
				return nil, err
			}
			return extpowens.New(c, extpowens.Options{}), nil
		},
		inbound: func(s *Suite) (inbound.Scheme, error) {
			// Without PUENTE_POWENS_WEBHOOK_SECRET the scheme has no key and refuses every webhook.
			path := s.cfg.Powens.WebhookPath
			if path == "" {
				path = "/v1/inbound/powens"
			}
			return inbound.Powens{Key: []byte(s.cfg.Powens.WebhookSecret), Path: path}, nil
		},
		events: []string{"connection"},
	}
}
