package suite

import (
	upsyncfy "puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/connection"
	connsyncfy "puente.dev/services/connection/syncfy"
	"puente.dev/services/extraction"
	extsyncfy "puente.dev/services/extraction/syncfy"
)

// Syncfy (Mexico): credential logins run as Syncfy jobs polled by the connection service, and
// accounts and transactions read with a session token of the Syncfy user named in the login's
// state. Each side has its own client (and session cache): they may run in different processes,
// and a session token is cheap to create, so sharing the cache would only save a call. Each
// client has its own rate limiter, so -service=all may send up to twice RatePerSecond, as two
// processes would.
func init() {
	upstreams["syncfy"] = upstream{
		enabled: func(c Config) bool { return c.Syncfy.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := upsyncfy.New(s.cfg.Syncfy, s.log)
			if err != nil {
				return nil, err
			}
			return connsyncfy.New(c), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := upsyncfy.New(s.cfg.Syncfy, s.log)
			if err != nil {
				return nil, err
			}
			return extsyncfy.New(c), nil
		},
	}
}
