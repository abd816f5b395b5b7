package connection_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

var serviceP = caller.Principal{Kind: apiv1.Principal_PRINCIPAL_SERVICE}

func clientP(clientID string) caller.Principal {
	return caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: clientID}
}

// requireAPIError asserts err carries an *apierr.Error of kind, with reason when reason is set.
func requireAPIError(t *testing.T, err error, kind apierr.Kind, reason string) {
	t.Helper()
	var ae *apierr.Error
	require.True(t, errors.As(err, &ae), "want an *apierr.Error, got %v", err)
	require.Equal(t, kind, ae.Kind, "kind of %v", err)
	if reason != "" {
		require.Equal(t, reason, ae.Reason, "reason of %v", err)
	}
}

// linkedState is the sandbox's state of a linked login, as the extraction service reads it.
type linkedState struct {
	V     int    `json:"v"`
	Inst  string `json:"inst"`
	User  string `json:"user"`
	Phase string `json:"phase"`
	Day   int    `json:"day"`
}

func decodeLinked(t *testing.T, raw []byte) linkedState {
	t.Helper()
	var s linkedState
	require.NoError(t, json.Unmarshal(raw, &s), "state %q", raw)
	return s
}

func TestConnectionLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	state := []byte(`{"session":"upstream-session-1"}`)
	b.provider.on("Start", connection.Outcome{Status: connection.Succeeded, UpstreamCode: "200", State: state})
	c := b.create(t, aliceCreds)
	id := c.GetId()

	t.Run("before the login runs the link has no state", func(t *testing.T) {
		l, err := b.svc.ConnectionLink(b.ctx, serviceP, b.client, id)
		require.NoError(t, err)
		require.Equal(t, connection.Pending, l.Connection.Status)
		require.Nil(t, l.UpstreamState)
	})

	b.runJobs(t)
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, id).GetStatus()))

	t.Run("a service token reads the link, with the upstream state opened", func(t *testing.T) {
		l, err := b.svc.ConnectionLink(b.ctx, serviceP, b.client, id)
		require.NoError(t, err)
		require.Equal(t, id, l.Connection.ID)
		require.Equal(t, b.client, l.Connection.ClientID)
		require.Equal(t, b.user, l.Connection.UserID)
		require.Equal(t, connection.Succeeded, l.Connection.Status)
		require.Equal(t, b.institution, l.Institution.ID)
		require.Equal(t, fakeInstitution.ExternalID, l.Institution.ExternalID)
		require.Equal(t, fakeProviderName, l.Institution.Provider)
		require.Equal(t, state, l.UpstreamState)

		var sealed []byte
		require.NoError(t, b.admin.QueryRow(b.ctx, `SELECT provider_state FROM connection.connections WHERE id = $1`, id).Scan(&sealed))
		require.NotEmpty(t, sealed)
		require.NotContains(t, string(sealed), "upstream-session-1", "the state is sealed at rest")
	})

	t.Run("through the API", func(t *testing.T) {
		resp, err := b.api.GetConnectionLink(caller.With(b.ctx, serviceP), &connectionv1.GetConnectionLinkRequest{ClientId: b.client, Id: id})
		require.NoError(t, err)
		require.Equal(t, id, resp.GetConnectionId())
		require.Equal(t, b.user, resp.GetUserId())
		require.Equal(t, connectionv1.ConnectionStatus_CONNECTION_STATUS_SUCCEEDED, resp.GetStatus())
		require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_UNSPECIFIED, resp.GetReason())
		require.Equal(t, fakeProviderName, resp.GetProvider())
		require.Equal(t, b.institution, resp.GetInstitutionId())
		require.Equal(t, fakeInstitution.ExternalID, resp.GetInstitutionExternalId())
		require.Equal(t, "CL", resp.GetInstitutionCountry())
		require.Equal(t, state, resp.GetUpstreamState())
	})

	t.Run("no one but a service token reads it", func(t *testing.T) {
		for _, p := range []caller.Principal{
			clientP(b.client),
			{Kind: apiv1.Principal_PRINCIPAL_TASK, ClientID: b.client, UserID: b.user},
			{Kind: apiv1.Principal_PRINCIPAL_WIDGET, ClientID: b.client, UserID: b.user},
			{Kind: apiv1.Principal_PRINCIPAL_ADMIN},
			{Kind: apiv1.Principal_PRINCIPAL_PUBLIC},
		} {
			_, err := b.svc.ConnectionLink(b.ctx, p, b.client, id)
			requireAPIError(t, err, apierr.NotFound, "")
		}
	})

	t.Run("another client's id reads as not found", func(t *testing.T) {
		_, err := b.svc.ConnectionLink(b.ctx, serviceP, ids.New("cli"), id)
		requireAPIError(t, err, apierr.NotFound, "")
		_, err = b.svc.ConnectionLink(b.ctx, serviceP, "", id)
		requireAPIError(t, err, apierr.NotFound, "")
		_, err = b.svc.ConnectionLink(b.ctx, serviceP, b.client, "con_"+strings.Repeat("0", 26))
		requireAPIError(t, err, apierr.NotFound, "")
	})

	t.Run("a failed connection's link says why", func(t *testing.T) {
		b.provider.on("Start", connection.Outcome{Status: connection.Failed, Reason: connection.InvalidCredentials, UpstreamCode: "401"})
		failed := b.create(t, aliceCreds)
		b.runJobs(t)
		resp, err := b.api.GetConnectionLink(caller.With(b.ctx, serviceP), &connectionv1.GetConnectionLinkRequest{ClientId: b.client, Id: failed.GetId()})
		require.NoError(t, err)
		require.Equal(t, connectionv1.ConnectionStatus_CONNECTION_STATUS_FAILED, resp.GetStatus())
		require.Equal(t, connectionv1.FailureReason_FAILURE_REASON_INVALID_CREDENTIALS, resp.GetReason())
		require.Empty(t, resp.GetUpstreamState())
	})
}

// sandboxBundle is a bundle whose service also has the sandbox provider, and the sandbox's
// Banco Arena (Chile).
func sandboxBundle(t *testing.T) (bundle, string) {
	t.Helper()
	b := setupWith(t, sandbox.New())
	var arena string
	require.NoError(t, b.admin.QueryRow(b.ctx, `SELECT id FROM connection.institutions WHERE provider = $1 AND external_id = $2`,
		sandbox.Name, sandbox.InstitutionGood).Scan(&arena))
	return b, arena
}

func (b bundle) createAt(t *testing.T, institution, username string) string {
	t.Helper()
	resp, err := b.api.CreateConnection(b.as(b.client), &connectionv1.CreateConnectionRequest{
		UserId: b.user, InstitutionId: institution, Credentials: map[string]string{"username": username, "password": sandbox.GoodPassword},
	})
	require.NoError(t, err)
	return resp.GetConnection().GetId()
}

func (b bundle) linkState(t *testing.T, id string) linkedState {
	t.Helper()
	l, err := b.svc.ConnectionLink(b.ctx, serviceP, b.client, id)
	require.NoError(t, err)
	return decodeLinked(t, l.UpstreamState)
}

func TestAdvanceDays(t *testing.T) {
	t.Parallel()
	b, arena := sandboxBundle(t)
	id := b.createAt(t, arena, sandbox.UserGood)

	t.Run("a connection that has not succeeded has no bank to move", func(t *testing.T) {
		_, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), id, 1)
		requireAPIError(t, err, apierr.FailedPrecondition, "NOT_SUCCEEDED")
	})

	b.runJobs(t)
	require.Equal(t, "SUCCEEDED", statusName(b.get(t, id).GetStatus()))
	require.Equal(t, linkedState{V: 1, Inst: sandbox.InstitutionGood, User: sandbox.UserGood, Phase: "linked", Day: 0}, b.linkState(t, id))

	t.Run("the bank moves on, and its date is returned", func(t *testing.T) {
		date, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), id, 3)
		require.NoError(t, err)
		require.Equal(t, "2026-01-04", date)
		require.Equal(t, 3, b.linkState(t, id).Day)

		date, err = b.svc.AdvanceDays(b.ctx, clientP(b.client), id, 28)
		require.NoError(t, err)
		require.Equal(t, "2026-02-01", date, "AnchorDate 2026-01-01 + 31 days")
		s := b.linkState(t, id)
		require.Equal(t, 31, s.Day)
		require.Equal(t, sandbox.UserGood, s.User, "the bank is still the user's")
		require.Equal(t, "SUCCEEDED", statusName(b.get(t, id).GetStatus()), "the connection is untouched")
		require.Len(t, b.get(t, id).GetTimeline(), 3, "moving the bank adds no step")
	})

	t.Run("another client's connection reads as not found", func(t *testing.T) {
		_, err := b.svc.AdvanceDays(b.ctx, clientP(ids.New("cli")), id, 1)
		requireAPIError(t, err, apierr.NotFound, "")
		require.Equal(t, 31, b.linkState(t, id).Day)
	})

	t.Run("a failed connection has no bank to move", func(t *testing.T) {
		bad := b.createAt(t, arena, sandbox.UserLocked)
		b.runJobs(t)
		require.Equal(t, "FAILED", statusName(b.get(t, bad).GetStatus()))
		_, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), bad, 1)
		requireAPIError(t, err, apierr.FailedPrecondition, "NOT_SUCCEEDED")
	})

	t.Run("an institution that is not simulated does not move in time", func(t *testing.T) {
		b.provider.on("Start", connection.Outcome{Status: connection.Succeeded, UpstreamCode: "200", State: []byte(`{"session":"s"}`)})
		real := b.create(t, aliceCreds).GetId()
		b.runJobs(t)
		require.Equal(t, "SUCCEEDED", statusName(b.get(t, real).GetStatus()))
		_, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), real, 1)
		requireAPIError(t, err, apierr.FailedPrecondition, "NOT_SIMULATED")
		l, err := b.svc.ConnectionLink(b.ctx, serviceP, b.client, real)
		require.NoError(t, err)
		require.Equal(t, []byte(`{"session":"s"}`), l.UpstreamState, "its state is untouched")
	})

	// The API takes 1 to 365 days a call; the sandbox's banks run for MaxDays. A caller going
	// past that made a request the sandbox cannot honour: a client error, not an internal one.
	t.Run("moving past the sandbox's last day is refused as the caller's mistake", func(t *testing.T) {
		before := b.linkState(t, id).Day
		_, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), id, sandbox.MaxDays)
		require.Error(t, err)
		require.Contains(t, []apierr.Kind{apierr.FailedPrecondition, apierr.InvalidArgument}, apierr.KindOf(err),
			"kind of %v (Internal is a 500 and logged as Puente's fault)", err)
		require.Equal(t, before, b.linkState(t, id).Day)
	})
}

func TestAdvanceDaysKeepsWhoseBankItIs(t *testing.T) {
	t.Parallel()
	b, arena := sandboxBundle(t)
	id := b.createAt(t, arena, sandbox.UserPartial)
	b.clock.Advance(time.Second)
	b.runJobs(t)
	date, err := b.svc.AdvanceDays(b.ctx, clientP(b.client), id, 5)
	require.NoError(t, err)
	require.Equal(t, "2026-01-06", date)
	require.Equal(t, linkedState{V: 1, Inst: sandbox.InstitutionGood, User: sandbox.UserPartial, Phase: "linked", Day: 5}, b.linkState(t, id))
}
