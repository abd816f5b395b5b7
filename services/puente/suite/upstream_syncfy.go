package suite

import (
	"sync"

	upsyncfy "puente.dev/pkg/upstream/syncfy"
	"puente.dev/services/connection"
	connsyncfy "puente.dev/services/connection/syncfy"
	"puente.dev/services/extraction"
	extsyncfy "puente.dev/services/extraction/syncfy"
)

// syncfyClients holds one wire client per suite, shared by both adapters so that Syncfy users
// and session tokens are cached once per process.
var syncfyClients sync.Map // *Suite → *upsyncfy.Client

func syncfyClient(s *Suite) (*upsyncfy.Client, error) {
	if c, ok := syncfyClients.Load(s); ok {
		return c.(*upsyncfy.Client), nil
	}
	c, err := upsyncfy.New(s.cfg.Syncfy, s.log)
	if err != nil {
		return nil, err
	}
	actual, _ := syncfyClients.LoadOrStore(s, c)
	return actual.(*upsyncfy.Client), nil
}

func init() {
	upstreams["syncfy"] = upstream{
		enabled: func(c Config) bool { return c.Syncfy.Enabled() },
		connection: func(s *Suite) (connection.Provider, error) {
			c, err := syncfyClient(s)
			if err != nil {
				return nil, err
			}
			return connsyncfy.New(c), nil
		},
		extraction: func(s *Suite) (extraction.Provider, error) {
			c, err := syncfyClient(s)
			if err != nil {
				return nil, err
			}
			return extsyncfy.New(c), nil
		},
	}
}
