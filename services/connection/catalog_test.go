package connection_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/pgtest"
	"puente.dev/pkg/postgres"
	"puente.dev/pkg/secretbox"
	"puente.dev/services/connection"
	connectionpg "puente.dev/services/connection/postgres"
)

// regexCatalog is a provider whose catalog has one field validation RE2 cannot compile (an
// upstream's lookahead) beside one it can.
type regexCatalog struct{ connection.Provider }

func (regexCatalog) Name() string { return "regexbank" }

func (regexCatalog) Institutions(context.Context) ([]connection.Institution, error) {
	return []connection.Institution{{
		ExternalID: "rb-1", OrganizationID: "org-rb", OrganizationName: "Regex Group", Name: "Regex Bank",
		Country: "MX", Personal: true, Products: []string{"ACCOUNTS"}, Auth: connection.Credentials, Health: connection.Operational,
		Fields: []connection.CredentialField{
			{Name: "username", Type: connection.Text, Label: "User", Required: true, IsUsername: true, Validation: `^(?=\d)\w+$`},
			{Name: "pin", Type: connection.Password, Label: "PIN", Required: true, Validation: `^\d{4}$`},
		},
	}}, nil
}

func TestACatalogValidationRE2CannotCompileIsDroppedAndSaid(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	require.NoError(t, connectionpg.Migrate(ctx, url))
	pool, err := postgres.Open(ctx, url, connectionpg.Schema)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var logs bytes.Buffer
	svc, err := connection.NewService(connectionpg.New(pool), []connection.Provider{regexCatalog{}}, anyUser{}, noConsents{t: t},
		connection.Config{EncryptionKeys: secretbox.NewKeySpec("t1"), HashKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", PublicURL: "http://127.0.0.1:8080", Workers: 1, MinPollInterval: time.Second},
		slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.NoError(t, svc.SyncCatalogs(ctx))

	p := caller.Principal{Kind: apiv1.Principal_PRINCIPAL_CLIENT, ClientID: ids.New("cli")}
	ins, err := svc.ListInstitutions(ctx, p, connection.InstitutionFilter{Country: "MX"}, connection.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, ins, 1)
	got, err := svc.GetInstitution(ctx, p, ins[0].ID)
	require.NoError(t, err)
	require.Empty(t, got.Fields[0].Validation, "a check that cannot be made is not claimed")
	require.Equal(t, `^\d{4}$`, got.Fields[1].Validation)
	require.Contains(t, logs.String(), "not an RE2 expression")
	require.Contains(t, logs.String(), "field=username")

	require.NoError(t, connection.CheckCredentials(got.Fields, map[string]string{"username": "anything", "pin": "1234"}))
	require.Error(t, connection.CheckCredentials(got.Fields, map[string]string{"username": "anything", "pin": "12a4"}))
}
