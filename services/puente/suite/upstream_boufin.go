package suite

import (
	bf "puente.dev/pkg/upstream/boufin"
	"puente.dev/services/connection"
	connboufin "puente.dev/services/connection/boufin"
	"puente.dev/services/extraction"
	extboufin "puente.dev/services/extraction/boufin"
)

// Boufin Connect (Chile): REDIRECT logins through its Connect app, product pulls per consent.
// Each side has its own client (and Task Token cache): they may run in different processes.
func init() {
	upstreams["boufin"] = upstream{
		enabled: func(c Config) bool { return c.Boufin.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := bf.New(s.cfg.Boufin, nil, s.log)
			if err != nil {
				return nil, err
			}
			return connboufin.New(c), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := bf.New(s.cfg.Boufin, nil, s.log)
			if err != nil {
				return nil, err
			}
			return extboufin.New(c), nil
		},
	}
}
