package suite

import (
	"context"
	"fmt"
	"slices"

	"puente.dev/services/connection"
	"puente.dev/services/extraction"
	"puente.dev/services/webhook/inbound"
)

// upstream is one provider's wiring into the services that own part of its flow. Each
// upstream_<name>.go adds its own in init; a provider runs when its configuration enables it.
type upstream struct {
	enabled    func(Config) bool
	connection func(s *Suite) (connection.Provider, error)
	extraction func(s *Suite) (extraction.Provider, error)
	// inbound verifies the provider's webhooks; events names the services they go to
	// ("connection", "extraction", "sync"), each of which reads what concerns it.
	inbound func(s *Suite) (inbound.Scheme, error)
	events  []string
}

var upstreams = map[string]upstream{}

// enabledUpstreams returns the configured providers, by name, in a stable order.
func (s *Suite) enabledUpstreams() []string {
	var names []string
	for name, u := range upstreams {
		if u.enabled(s.cfg) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func (s *Suite) connectionProviders() ([]connection.Provider, error) {
	var out []connection.Provider
	for _, name := range s.enabledUpstreams() {
		if u := upstreams[name]; u.connection != nil {
			p, err := u.connection(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *Suite) extractionProviders() ([]extraction.Provider, error) {
	var out []extraction.Provider
	for _, name := range s.enabledUpstreams() {
		if u := upstreams[name]; u.extraction != nil {
			p, err := u.extraction(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// upstreamContext is the context adapters' background work (token refreshes) runs in.
func (s *Suite) upstreamContext() context.Context { return s.backgroundCtx }
