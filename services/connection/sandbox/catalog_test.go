package sandbox_test

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

func catalog(t *testing.T) []connection.Institution {
	t.Helper()
	insts, err := sandbox.New().Institutions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) == 0 {
		t.Fatal("empty catalog")
	}
	return insts
}

var knownProducts = []string{"ACCOUNTS", "BALANCES", "TRANSACTIONS", "IDENTITY", "INVESTMENTS", "CREDIT_CARDS", "REPORTS"}

func TestEveryInstitutionIsWellFormed(t *testing.T) {
	ids := map[string]bool{}
	for _, inst := range catalog(t) {
		t.Run(inst.ExternalID, func(t *testing.T) {
			if !strings.HasPrefix(inst.ExternalID, "sandbox-"+strings.ToLower(inst.Country)+"-") {
				t.Errorf("external id %q does not start with sandbox-<country>-", inst.ExternalID)
			}
			if ids[inst.ExternalID] {
				t.Errorf("external id %q repeats", inst.ExternalID)
			}
			ids[inst.ExternalID] = true
			if inst.Provider != "sandbox" || inst.Name == "" || inst.OrganizationID == "" || inst.OrganizationName == "" {
				t.Errorf("missing provider, name or organization: %+v", inst)
			}
			if !inst.Personal && !inst.Business {
				t.Error("neither personal nor business")
			}
			if len(inst.Products) == 0 {
				t.Error("no products")
			}
			for _, p := range inst.Products {
				if !slices.Contains(knownProducts, p) {
					t.Errorf("unknown product %q", p)
				}
			}
			if len(inst.Sources) == 0 {
				t.Error("no sources")
			}
			if want := "https://sandbox.puente.dev/logos/" + inst.ExternalID + ".png"; inst.LogoURL != want {
				t.Errorf("logo %q, want %q", inst.LogoURL, want)
			}
			if _, err := url.Parse(inst.LogoURL); err != nil {
				t.Errorf("logo: %v", err)
			}
			switch inst.Health {
			case connection.Operational, connection.Down:
			default:
				t.Errorf("health %q", inst.Health)
			}
			switch inst.Auth {
			case connection.Redirect:
				if len(inst.Fields) != 0 {
					t.Errorf("redirect institution with fields %+v", inst.Fields)
				}
			case connection.Credentials:
				checkFields(t, inst.Fields)
			default:
				t.Errorf("auth %q", inst.Auth)
			}
		})
	}
}

func checkFields(t *testing.T, fields []connection.CredentialField) {
	t.Helper()
	var usernames, passwords int
	names := map[string]bool{}
	for _, f := range fields {
		if f.Name == "" || f.Label == "" || names[f.Name] {
			t.Errorf("field %+v has no name or label, or repeats a name", f)
		}
		names[f.Name] = true
		if f.Validation != "" {
			if _, err := regexp.Compile(f.Validation); err != nil {
				t.Errorf("field %s: validation %q: %v", f.Name, f.Validation, err)
			}
		}
		switch f.Type {
		case connection.Text:
			if f.IsUsername {
				usernames++
			}
		case connection.Password:
			passwords++
		case connection.Select:
			if len(f.Options) == 0 {
				t.Errorf("SELECT field %s has no options", f.Name)
			}
			for _, o := range f.Options {
				if o.Value == "" || o.Label == "" {
					t.Errorf("SELECT field %s option %+v", f.Name, o)
				}
			}
		default:
			t.Errorf("field %s type %q", f.Name, f.Type)
		}
		if f.IsUsername && f.Type != connection.Text {
			t.Errorf("username field %s is %s, not TEXT", f.Name, f.Type)
		}
	}
	if usernames != 1 || passwords != 1 {
		t.Errorf("%d username and %d password fields, want one of each", usernames, passwords)
	}
}

func TestScriptedUsernamesPassEveryUsernameValidation(t *testing.T) {
	users := []string{"user_good", "user_otp", "user_otp2", "user_image", "user_captcha", "user_otp_timeout",
		"user_slow", "user_relogin", "user_badpass", "user_locked", "user_action", "user_partial", "user_accounts"}
	for _, inst := range catalog(t) {
		for _, f := range inst.Fields {
			if !f.IsUsername && f.Type != connection.Password {
				continue
			}
			re := regexp.MustCompile(f.Validation)
			values := users
			if f.Type == connection.Password {
				values = []string{"pass_good"}
			}
			for _, v := range values {
				if !re.MatchString(v) {
					t.Errorf("%s field %s rejects %q", inst.ExternalID, f.Name, v)
				}
			}
		}
	}
}

func TestTheCatalogCoversWhatTheServiceNeeds(t *testing.T) {
	insts := catalog(t)
	has := func(what string, ok func(connection.Institution) bool) {
		t.Helper()
		if !slices.ContainsFunc(insts, ok) {
			t.Errorf("no institution %s", what)
		}
	}
	for _, c := range []string{"CL", "MX", "BR", "FR"} {
		has("in "+c, func(i connection.Institution) bool { return i.Country == c })
	}
	for _, c := range []string{"CL", "BR"} {
		has("with redirect auth in "+c, func(i connection.Institution) bool { return i.Country == c && i.Auth == connection.Redirect })
	}
	has("personal only", func(i connection.Institution) bool { return i.Personal && !i.Business })
	has("business only", func(i connection.Institution) bool { return i.Business && !i.Personal })
	has("with a SELECT field", func(i connection.Institution) bool {
		return slices.ContainsFunc(i.Fields, func(f connection.CredentialField) bool { return f.Type == connection.Select })
	})
	has("with a token field", func(i connection.Institution) bool {
		return slices.ContainsFunc(i.Fields, func(f connection.CredentialField) bool { return f.IsToken && f.Type == connection.Text })
	})
	has("with two sources", func(i connection.Institution) bool { return len(i.Sources) > 1 })
	for _, p := range knownProducts {
		has("offering "+p, func(i connection.Institution) bool { return slices.Contains(i.Products, p) })
	}

	var down []string
	orgs := map[string]int{}
	for _, i := range insts {
		if i.Health == connection.Down {
			down = append(down, i.ExternalID)
		}
		orgs[i.OrganizationID]++
	}
	if !slices.Equal(down, []string{sandbox.InstitutionDown}) {
		t.Errorf("down institutions %v, want just %s", down, sandbox.InstitutionDown)
	}
	if orgs["sandbox-org-banco-arena"] < 2 {
		t.Error("Banco Arena does not group several institutions")
	}
	for _, ext := range []string{sandbox.InstitutionGood, sandbox.InstitutionDown, sandbox.InstitutionRedirect} {
		has(ext, func(i connection.Institution) bool { return i.ExternalID == ext })
	}
}

func TestTheCatalogIsTheSameOnEveryCallAndCallersCannotChangeIt(t *testing.T) {
	first := catalog(t)
	first[0].Name = "changed"
	first[0].Fields[0].Label = "changed"
	first[0].Products[0] = "changed"
	second := catalog(t)
	if second[0].Name == "changed" || second[0].Fields[0].Label == "changed" || second[0].Products[0] == "changed" {
		t.Error("a caller changed the catalog")
	}
	third := catalog(t)
	if len(second) != len(third) {
		t.Fatal("catalog size changed")
	}
	for i := range second {
		if second[i].ExternalID != third[i].ExternalID || second[i].Name != third[i].Name {
			t.Errorf("entry %d changed between calls", i)
		}
	}
}
