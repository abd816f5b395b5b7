package connection

import (
	"context"
	"fmt"
	"time"

	"puente.dev/pkg/metrics"
)

// Observed health: the catalog shows the worse of what the provider reports and what Puente's
// own recent connections say about an institution. The outcomes are counted in the database, in
// the transaction that finishes each connection, so every replica shows the same health.
//
// The rule, over the last HealthWindow: with at least HealthMinConnections finished connections
// to the institution that are not user errors, a share of institution errors at or above
// HealthDownShare is DOWN, at or above HealthDegradedShare DEGRADED, else OPERATIONAL. User errors
// (wrong credentials, a failed two-factor round, a denied consent) never degrade an institution,
// and internal errors count in the total but not as the institution's fault.
const (
	HealthWindow         = time.Hour
	HealthMinConnections = 5
	HealthDownShare      = 0.5
	HealthDegradedShare  = 0.2
	// OutcomeBucket is the granularity outcomes are counted at; the window is read in whole
	// buckets, so it spans between HealthWindow and HealthWindow + OutcomeBucket.
	OutcomeBucket = 5 * time.Minute
	// OutcomeRetention is how long counts are kept (Housekeep prunes older ones).
	OutcomeRetention = 24 * time.Hour
)

// Outcomes counts an institution's finished connections by outcome.
type Outcomes struct {
	Succeeded, UserErrors, InstitutionErrors, InternalErrors int
}

// Observed is the health the outcomes show.
func (o Outcomes) Observed() Health {
	counted := o.Succeeded + o.InstitutionErrors + o.InternalErrors
	if counted < HealthMinConnections {
		return Operational
	}
	share := float64(o.InstitutionErrors) / float64(counted)
	switch {
	case share >= HealthDownShare:
		return Down
	case share >= HealthDegradedShare:
		return Degraded
	}
	return Operational
}

var healthRank = map[Health]int{Operational: 0, Degraded: 1, Down: 2}

// worse returns the worse of two healths (an unknown one counts as operational).
func worse(a, b Health) Health {
	if healthRank[b] > healthRank[a] {
		return b
	}
	return a
}

// FinishedAs is how a finished connection ended, as puente_connections_total and the observed
// health count it: one of metrics.Connection*.
func FinishedAs(c Connection) string {
	if c.Status == Succeeded {
		return metrics.ConnectionSucceeded
	}
	switch c.Reason {
	case InvalidCredentials, Locked, UserActionRequired, MFATimeout, MFAFailed, RedirectDenied, LoginRequired:
		return metrics.ConnectionUserError
	case InstitutionUnavailable:
		return metrics.ConnectionInstitutionError
	}
	return metrics.ConnectionInternalError // INTERNAL, and any reason added later until it is sorted here
}

// withObservedHealth sets each institution's Health to the worse of its provider's and the one
// its recent connections show.
func (s *Service) withObservedHealth(ctx context.Context, ins []Institution) ([]Institution, error) {
	if len(ins) == 0 {
		return ins, nil
	}
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	recent, err := s.store.RecentOutcomes(ctx, ids, s.now().UTC().Add(-HealthWindow))
	if err != nil {
		return nil, fmt.Errorf("recent outcomes: %w", err)
	}
	out := make([]Institution, len(ins))
	for i, in := range ins {
		in.Health = worse(in.Health, recent[in.ID].Observed())
		out[i] = in
	}
	return out, nil
}

// update is Store.Update that also counts the connection in puente_connections_total when this
// change is the one that finishes it. The row is locked while fn runs, so of two replicas racing
// on a connection only the one whose transaction moved it to a final status counts it; the
// store counts it for the observed health in that same transaction. A reauthentication starts a
// new login under the same id, and its end counts again.
func (s *Service) update(ctx context.Context, clientID, id string, fn func(c *Connection, sec *Secrets) (Change, error)) (Connection, error) {
	var finished bool
	c, err := s.store.Update(ctx, clientID, id, func(c *Connection, sec *Secrets) (Change, error) {
		before := c.Status
		ch, err := fn(c, sec)
		finished = !before.Final() && c.Status.Final()
		return ch, err
	})
	if err == nil && finished {
		s.metrics.Connection(c.Provider, c.InstitutionID, FinishedAs(c))
	}
	return c, err
}
