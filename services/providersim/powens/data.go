package powens

// The simulator's catalogue: the AIS test connector (credentials, sources in sequence), a
// webauth connector, and a hidden one that is never listed.

// TestConnectorUUID is the credentials test bank (the UUID of Powens' Pay test connector).
const TestConnectorUUID = "338178e6-3d01-564f-9a7b-52ca442459bf"

// WebauthConnectorUUID is the webauth (redirect) test bank.
const WebauthConnectorUUID = "7a1c3b4e-5d6f-5a8b-9c0d-1e2f3a4b5c6d"

const hiddenConnectorUUID = "0b0b0b0b-0000-5000-8000-000000000000"

// Logins of the test connector that script a scenario; any other login succeeds.
const (
	LoginWrongpass       = "wrongpass"
	LoginSCA             = "sca"
	LoginOTP             = "otp"
	LoginDecoupled       = "decoupled"
	LoginWebauth         = "webauth"
	LoginActionNeeded    = "actionneeded"
	LoginPasswordExpired = "passwordexpired"
	LoginRateLimiting    = "ratelimiting"
	LoginUnavailable     = "unavailable"
	LoginBug             = "bug"
)

var loginStates = map[string]string{
	LoginSCA:             "SCARequired",
	LoginOTP:             "additionalInformationNeeded",
	LoginDecoupled:       "decoupled",
	LoginWebauth:         "webauthRequired",
	LoginActionNeeded:    "actionNeeded",
	LoginPasswordExpired: "passwordExpired",
	LoginRateLimiting:    "rateLimiting",
	LoginUnavailable:     "websiteUnavailable",
	LoginBug:             "bug",
}

type jsonObj = map[string]any

func ptr[T any](v T) *T { return &v }

type connector struct {
	ID            int64
	UUID          string
	Name          string
	Hidden        bool
	AuthMechanism string
	Country       [2]string
	Sources       []source
	Fields        []field
}

type source struct {
	ID            int64
	Name          string
	AuthMechanism string
	Disabled      *string
	Priority      int
	AccountTypes  []string
	Accounts      []accountTemplate
}

type field struct {
	Name, Type, Label, Description, Regex string
	AuthMechanisms                        []string
	Required                              bool
	Values                                [][2]string
}

type accountTemplate struct {
	Name, Type, Number string
	Balance            float64
	Coming             float64
}

func catalogue() []connector {
	return []connector{
		{
			ID: 59, UUID: TestConnectorUUID, Name: "Powens Test Bank", AuthMechanism: "credentials", Country: [2]string{"FR", "France"},
			// Listed out of priority order, as nothing promises an order.
			Sources: []source{
				{ID: 102, Name: "directaccess", AuthMechanism: "credentials", Priority: 2, AccountTypes: []string{"savings", "lifeinsurance"},
					Accounts: []accountTemplate{
						{Name: "Livret A", Type: "savings", Number: "FR7630004000031234567890111", Balance: 5400.00},
						{Name: "Assurance Vie Horizon", Type: "lifeinsurance", Number: "AV00098765", Balance: 12000.50},
					}},
				{ID: 101, Name: "openapi", AuthMechanism: "credentials", Priority: 1, AccountTypes: []string{"checking", "card"},
					Accounts: []accountTemplate{
						{Name: "Compte Chèque", Type: "checking", Number: "FR7630004000031234567890143", Balance: 1523.45, Coming: -42.10},
						{Name: "Carte Visa Premier", Type: "card", Number: "4970XXXXXXXX1234", Balance: -120.30},
					}},
				{ID: 100, Name: "legacy", AuthMechanism: "credentials", Priority: 0, Disabled: ptr("2024-06-01 00:00:00"), AccountTypes: []string{"checking"}},
			},
			Fields: []field{
				{Name: "login", Type: "text", Label: "Identifiant", Description: "Votre identifiant de banque en ligne", Regex: `^[A-Za-z0-9._-]{2,32}$`,
					AuthMechanisms: []string{"credentials"}, Required: true},
				{Name: "password", Type: "password", Label: "Code secret", AuthMechanisms: []string{"credentials"}, Required: true},
				{Name: "website", Type: "list", Label: "Espace", AuthMechanisms: []string{"credentials", "webauth"},
					Values: [][2]string{{"par", "Particuliers"}, {"pro", "Professionnels"}}},
				{Name: "birthdate", Type: "date", Label: "Date de naissance", AuthMechanisms: []string{"credentials"}},
				{Name: "client_number", Type: "number", Label: "Numéro client", AuthMechanisms: []string{"credentials"}},
			},
		},
		{
			ID: 60, UUID: WebauthConnectorUUID, Name: "Powens Test OAuth Bank", AuthMechanism: "webauth", Country: [2]string{"FR", "France"},
			Sources: []source{
				{ID: 201, Name: "openapi", AuthMechanism: "webauth", Priority: 1, AccountTypes: []string{"checking"},
					Accounts: []accountTemplate{
						{Name: "Compte Courant", Type: "checking", Number: "FR7612739000701234567890182", Balance: 830.12},
					}},
			},
			Fields: []field{
				{Name: "website", Type: "list", Label: "Espace", AuthMechanisms: []string{"webauth"}, Required: true,
					Values: [][2]string{{"par", "Particuliers"}, {"pro", "Professionnels"}}},
				{Name: "login", Type: "text", Label: "Identifiant", AuthMechanisms: []string{"credentials"}, Required: true},
			},
		},
		{ID: 61, UUID: hiddenConnectorUUID, Name: "Hidden Bank", Hidden: true, AuthMechanism: "credentials", Country: [2]string{"FR", "France"}},
	}
}

func (c connector) json() jsonObj {
	var sources []jsonObj
	for _, s := range c.Sources {
		sources = append(sources, jsonObj{"id": s.ID, "id_connector": c.ID, "name": s.Name, "auth_mechanism": s.AuthMechanism,
			"disabled": s.Disabled, "priority": s.Priority, "account_types": s.AccountTypes, "capabilities": []string{"bank"}})
	}
	var fields []jsonObj
	for _, f := range c.Fields {
		o := jsonObj{"name": f.Name, "type": f.Type, "label": f.Label, "description": f.Description, "required": f.Required,
			"auth_mechanisms": f.AuthMechanisms}
		if f.Regex != "" {
			o["regex"] = f.Regex
		}
		if len(f.Values) > 0 {
			var vs []jsonObj
			for _, v := range f.Values {
				vs = append(vs, jsonObj{"value": v[0], "label": v[1]})
			}
			o["values"] = vs
		}
		fields = append(fields, o)
	}
	return jsonObj{"id": c.ID, "uuid": c.UUID, "name": c.Name, "hidden": c.Hidden, "charged": true, "beta": false,
		"capabilities": []string{"bank"}, "auth_mechanism": c.AuthMechanism, "sync_periodicity": 1, "months_to_fetch": 13,
		"sources": sources, "fields": fields, "countries": []jsonObj{{"id": c.Country[0], "name": c.Country[1]}}}
}

func (c connector) source(name string) (source, bool) {
	for _, s := range c.Sources {
		if s.Name == name && s.Disabled == nil {
			return s, true
		}
	}
	return source{}, false
}

// firstSource is the usable source of lowest priority.
func (c connector) firstSource() (source, bool) {
	var best source
	found := false
	for _, s := range c.Sources {
		if s.Disabled == nil && (!found || s.Priority < best.Priority) {
			best, found = s, true
		}
	}
	return best, found
}
