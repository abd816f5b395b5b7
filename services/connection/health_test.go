package connection_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/metrics"
	"puente.dev/services/connection"
	connectionpg "puente.dev/services/connection/postgres"
)

// finishWith makes one connection and runs its login, which the fake ends with out.
func (b bundle) finishWith(t *testing.T, out connection.Outcome) (id string) {
	t.Helper()
	b.provider.on("Start", out)
	c := b.create(t, aliceCreds)
	b.runJobs(t)
	require.Contains(t, []string{"SUCCEEDED", "FAILED"}, statusName(b.get(t, c.GetId()).GetStatus()))
	return c.GetId()
}

func failed(reason connection.Reason) connection.Outcome {
	return connection.Outcome{Status: connection.Failed, Reason: reason, UpstreamCode: "E", Message: "failed"}
}

// catalogHealth is the institution's health as ListInstitutions and GetInstitution show it
// (they must agree).
func (b bundle) catalogHealth(t *testing.T) string {
	t.Helper()
	list, err := b.api.ListInstitutions(b.as(b.client), &connectionv1.ListInstitutionsRequest{Query: fakeInstitution.Name})
	require.NoError(t, err)
	require.Len(t, list.GetInstitutions(), 1)
	one, err := b.api.GetInstitution(b.as(b.client), &connectionv1.GetInstitutionRequest{Id: b.institution})
	require.NoError(t, err)
	require.Equal(t, list.GetInstitutions()[0].GetHealth(), one.GetInstitution().GetHealth(), "list and get agree")
	return connectionv1.InstitutionHealth_name[int32(one.GetInstitution().GetHealth())]
}

const (
	operational = "INSTITUTION_HEALTH_OPERATIONAL"
	degraded    = "INSTITUTION_HEALTH_DEGRADED"
	down        = "INSTITUTION_HEALTH_DOWN"
)

// connectionCounts reads puente_connections_total by provider, institution and outcome.
func connectionCounts(t *testing.T, m *metrics.Metrics) map[[3]string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	out := map[[3]string]float64{}
	for _, f := range families {
		if f.GetName() != "puente_connections_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[[3]string{l["provider"], l["institution"], l["outcome"]}] += s.GetCounter().GetValue()
		}
	}
	return out
}

func TestRecentInstitutionErrorsDegradeTheCatalogHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, operational, b.catalogHealth(t))

	// User errors, however many, say nothing about the institution.
	for _, r := range []connection.Reason{connection.InvalidCredentials, connection.Locked, connection.MFAFailed,
		connection.MFATimeout, connection.UserActionRequired, connection.RedirectDenied, connection.LoginRequired} {
		b.finishWith(t, failed(r))
	}
	require.Equal(t, operational, b.catalogHealth(t))

	// Too few connections to judge: 2 institution errors out of 4 are not enough.
	ok := b.finishWith(t, succeeded("200"))
	b.finishWith(t, succeeded("200"))
	b.finishWith(t, failed(connection.InstitutionUnavailable))
	b.finishWith(t, failed(connection.InstitutionUnavailable))
	require.Equal(t, operational, b.catalogHealth(t), "4 connections that count are too few")

	// 2 of 5 (40%) are the institution's fault: DEGRADED.
	b.finishWith(t, failed(connection.Internal))
	require.Equal(t, degraded, b.catalogHealth(t))

	// 4 of 7: DOWN.
	b.finishWith(t, failed(connection.InstitutionUnavailable))
	b.finishWith(t, failed(connection.InstitutionUnavailable))
	require.Equal(t, down, b.catalogHealth(t))

	// Each login counted once, however often the jobs run again, and a finished connection that
	// moves to another final status (the bank asking the user to log in again) is not a new one.
	b.clock.Advance(time.Minute)
	b.runJobs(t)
	_, err := b.svc.RequireLogin(b.as(b.client), caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: b.client}, ok)
	require.NoError(t, err)
	counts := connectionCounts(t, b.metrics)
	require.Equal(t, map[[3]string]float64{
		{"fake", b.institution, metrics.ConnectionUserError}:        7,
		{"fake", b.institution, metrics.ConnectionSucceeded}:        2,
		{"fake", b.institution, metrics.ConnectionInstitutionError}: 4,
		{"fake", b.institution, metrics.ConnectionInternalError}:    1,
	}, counts)

	// An hour later those outcomes have aged out: the provider's word stands again.
	b.clock.Advance(connection.HealthWindow + connection.OutcomeBucket)
	require.Equal(t, operational, b.catalogHealth(t))

	// Housekeeping prunes counts past their retention.
	require.Positive(t, b.count(t, `SELECT count(*) FROM connection.institution_outcomes`))
	b.clock.Advance(connection.OutcomeRetention)
	require.NoError(t, b.svc.Housekeep(b.ctx))
	require.Zero(t, b.count(t, `SELECT count(*) FROM connection.institution_outcomes`))
}

func TestAFinishedConnectionIsCountedOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.create(t, aliceCreds) // its login never runs: it stalls

	// A second replica over the same database, with its own metrics.
	cfg := b.cfg
	cfg.Metrics = metrics.New(metrics.Options{})
	replica, err := connection.NewService(connectionpg.New(b.pool), []connection.Provider{b.provider}, anyUser{}, noConsents{t: t}, cfg, discard())
	require.NoError(t, err)
	replica.SetClock(b.clock.Now)

	// Both replicas' housekeeping finds it stalled at once, and fails it.
	b.clock.Advance(connection.StallAfter + time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, svc := range []*connection.Service{b.svc, replica} {
		wg.Go(func() { errs[i] = svc.Housekeep(b.ctx) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	got := b.get(t, c.GetId())
	require.Equal(t, "FAILED", statusName(got.GetStatus()))
	require.Equal(t, "INTERNAL", reasonName(got.GetReason()))

	key := [3]string{"fake", b.institution, metrics.ConnectionInternalError}
	require.Equal(t, 1.0, connectionCounts(t, b.metrics)[key]+connectionCounts(t, cfg.Metrics)[key],
		"the replica whose change finished it counts it, the other does not")
	require.Equal(t, 1, b.count(t, `SELECT coalesce(sum(internal_errors), 0)::int FROM connection.institution_outcomes WHERE institution_id = $1`, b.institution))
}
