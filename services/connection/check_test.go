package connection_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/apierr"
	"puente.dev/services/connection"
)

func TestCheckCredentials(t *testing.T) {
	fields := []connection.CredentialField{
		{Name: "username", Type: connection.Text, Label: "User", Required: true, IsUsername: true, Validation: `^[a-z0-9]{3,12}$`},
		{Name: "password", Type: connection.Password, Label: "Password", Required: true},
		{Name: "kind", Type: connection.Select, Label: "Kind", Required: true, Options: []connection.Option{
			{Value: "personal", Label: "Personal"}, {Value: "business", Label: "Business"},
		}},
		{Name: "token", Type: connection.Text, Label: "Token", IsToken: true, Validation: `^\d{6}$`},
	}
	good := func(change func(map[string]string)) map[string]string {
		v := map[string]string{"username": "alice", "password": "s3cret", "kind": "personal"}
		if change != nil {
			change(v)
		}
		return v
	}
	for name, tc := range map[string]struct {
		values    map[string]string
		wantField string // "" for no error
	}{
		"all good":                   {good(nil), ""},
		"all good with optional":     {good(func(v map[string]string) { v["token"] = "123456" }), ""},
		"optional empty":             {good(func(v map[string]string) { v["token"] = "" }), ""},
		"missing required":           {good(func(v map[string]string) { delete(v, "password") }), "credentials.password"},
		"empty required":             {good(func(v map[string]string) { v["username"] = "" }), "credentials.username"},
		"unknown field":              {good(func(v map[string]string) { v["pin"] = "1234" }), "credentials.pin"},
		"select not an option":       {good(func(v map[string]string) { v["kind"] = "corporate" }), "credentials.kind"},
		"select label not the value": {good(func(v map[string]string) { v["kind"] = "Personal" }), "credentials.kind"},
		"regex mismatch":             {good(func(v map[string]string) { v["username"] = "Alice!" }), "credentials.username"},
		"optional regex mismatch":    {good(func(v map[string]string) { v["token"] = "12345" }), "credentials.token"},
		"nothing given":              {map[string]string{}, "credentials.username"},
	} {
		t.Run(name, func(t *testing.T) {
			err := connection.CheckCredentials(fields, tc.values)
			if tc.wantField == "" {
				require.NoError(t, err)
				return
			}
			var ae *apierr.Error
			require.True(t, errors.As(err, &ae), "want an *apierr.Error, got %v", err)
			require.Equal(t, apierr.InvalidArgument, ae.Kind)
			require.NotEmpty(t, ae.Fields)
			require.Equal(t, tc.wantField, ae.Fields[0].Field)
		})
	}
}

func TestCheckCredentialsNoFields(t *testing.T) {
	require.NoError(t, connection.CheckCredentials(nil, nil))
	var ae *apierr.Error
	require.True(t, errors.As(connection.CheckCredentials(nil, map[string]string{"x": "y"}), &ae))
	require.Equal(t, "credentials.x", ae.Fields[0].Field)
}
