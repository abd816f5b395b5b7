package sandbox

import "puente.dev/services/connection"

// External ids of catalog institutions that tests refer to.
const (
	// InstitutionGood is a plain CREDENTIALS institution (username and password) in Chile.
	InstitutionGood = "sandbox-cl-banco-arena"
	// InstitutionDown is the DOWN institution: every login fails INSTITUTION_UNAVAILABLE.
	InstitutionDown = "sandbox-cl-banco-caido"
	// InstitutionRedirect is a REDIRECT (Open Finance consent) institution in Chile.
	InstitutionRedirect = "sandbox-cl-banco-cordillera"
)

// Products, as the catalog names them.
const (
	productAccounts     = "ACCOUNTS"
	productBalances     = "BALANCES"
	productTransactions = "TRANSACTIONS"
	productIdentity     = "IDENTITY"
	productInvestments  = "INVESTMENTS"
	productCreditCards  = "CREDIT_CARDS"
	productReports      = "REPORTS"
)

// usernameValidation accepts every scripted username as well as the identifiers real users type
// (RUT, RFC, CPF, e-mail).
const usernameValidation = `^[A-Za-z0-9._@+-]{3,64}$`

func logo(id string) string { return "https://sandbox.puente.dev/logos/" + id + ".png" }

func usernameField(label, description string) connection.CredentialField {
	return connection.CredentialField{
		Name: "username", Type: connection.Text, Label: label, Description: description,
		Required: true, IsUsername: true, Validation: usernameValidation,
	}
}

func passwordField(label string) connection.CredentialField {
	return connection.CredentialField{
		Name: "password", Type: connection.Password, Label: label, Required: true,
		Validation: `^.{4,64}$`,
	}
}

// catalog builds the catalog afresh on every call, so callers may keep and change what they get.
func catalog() []connection.Institution {
	return []connection.Institution{
		{
			ExternalID:       InstitutionGood,
			OrganizationID:   "sandbox-org-banco-arena",
			OrganizationName: "Banco Arena",
			Name:             "Banco Arena Personas",
			Country:          "CL",
			Personal:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productIdentity, productCreditCards},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("RUT o usuario", "Sandbox: use one of the scripted users, e.g. user_good"),
				passwordField("Clave de internet"),
			},
			Sources: []string{"openapi", "directaccess"},
			LogoURL: logo(InstitutionGood),
			Health:  connection.Operational,
		},
		{
			ExternalID:       "sandbox-cl-banco-arena-empresas",
			OrganizationID:   "sandbox-org-banco-arena",
			OrganizationName: "Banco Arena",
			Name:             "Banco Arena Empresas",
			Country:          "CL",
			Business:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productReports},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("RUT empresa o usuario", ""),
				passwordField("Clave"),
				{
					Name: "token", Type: connection.Text, Label: "Clave dinámica",
					Description: "The 6 to 8 digit code shown by your token device (any value works in the sandbox)",
					Required:    true, IsToken: true, Validation: `^[0-9]{6,8}$`,
				},
			},
			Sources: []string{"directaccess"},
			LogoURL: logo("sandbox-cl-banco-arena-empresas"),
			Health:  connection.Operational,
		},
		{
			ExternalID:       InstitutionRedirect,
			OrganizationID:   "sandbox-org-banco-cordillera",
			OrganizationName: "Banco Cordillera",
			Name:             "Banco Cordillera",
			Country:          "CL",
			Personal:         true,
			Business:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productIdentity},
			Auth:             connection.Redirect,
			Sources:          []string{"openapi"},
			LogoURL:          logo(InstitutionRedirect),
			Health:           connection.Operational,
		},
		{
			ExternalID:       InstitutionDown,
			OrganizationID:   "sandbox-org-banco-caido",
			OrganizationName: "Banco Caído",
			Name:             "Banco Caído",
			Country:          "CL",
			Personal:         true,
			Products:         []string{productAccounts, productBalances, productTransactions},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("RUT o usuario", "Sandbox: every login here fails INSTITUTION_UNAVAILABLE"),
				passwordField("Clave de internet"),
			},
			Sources: []string{"directaccess"},
			LogoURL: logo(InstitutionDown),
			Health:  connection.Down,
		},
		{
			ExternalID:       "sandbox-mx-banco-tesoro",
			OrganizationID:   "sandbox-org-banco-tesoro",
			OrganizationName: "Banco Tesoro",
			Name:             "Banco Tesoro",
			Country:          "MX",
			Personal:         true,
			Business:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productCreditCards, productInvestments},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				{
					Name: "account_type", Type: connection.Select, Label: "Tipo de cuenta", Required: true,
					Options: []connection.Option{{Value: "01", Label: "Personal"}, {Value: "02", Label: "Empresa"}},
				},
				usernameField("Número de cliente", ""),
				passwordField("Contraseña"),
			},
			Sources: []string{"directaccess"},
			LogoURL: logo("sandbox-mx-banco-tesoro"),
			Health:  connection.Operational,
		},
		{
			ExternalID:       "sandbox-mx-caja-del-valle",
			OrganizationID:   "sandbox-org-caja-del-valle",
			OrganizationName: "Caja del Valle",
			Name:             "Caja del Valle",
			Country:          "MX",
			Personal:         true,
			Products:         []string{productAccounts, productBalances, productTransactions},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("Usuario", ""),
				passwordField("Contraseña"),
			},
			Sources: []string{"directaccess"},
			LogoURL: logo("sandbox-mx-caja-del-valle"),
			Health:  connection.Operational,
		},
		{
			ExternalID:       "sandbox-br-banco-aurora",
			OrganizationID:   "sandbox-org-banco-aurora",
			OrganizationName: "Banco Aurora",
			Name:             "Banco Aurora",
			Country:          "BR",
			Personal:         true,
			Business:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productIdentity, productCreditCards, productInvestments},
			Auth:             connection.Redirect,
			Sources:          []string{"openapi"},
			LogoURL:          logo("sandbox-br-banco-aurora"),
			Health:           connection.Operational,
		},
		{
			ExternalID:       "sandbox-br-cooperativa-serra",
			OrganizationID:   "sandbox-org-cooperativa-serra",
			OrganizationName: "Cooperativa Serra",
			Name:             "Cooperativa Serra",
			Country:          "BR",
			Personal:         true,
			Products:         []string{productAccounts, productBalances, productTransactions},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("CPF ou usuário", ""),
				passwordField("Senha"),
			},
			Sources: []string{"directaccess"},
			LogoURL: logo("sandbox-br-cooperativa-serra"),
			Health:  connection.Operational,
		},
		{
			ExternalID:       "sandbox-fr-banque-lumiere",
			OrganizationID:   "sandbox-org-banque-lumiere",
			OrganizationName: "Banque Lumière",
			Name:             "Banque Lumière Particuliers",
			Country:          "FR",
			Personal:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productInvestments, productCreditCards},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("Identifiant", ""),
				passwordField("Code secret"),
			},
			Sources: []string{"openapi", "directaccess"},
			LogoURL: logo("sandbox-fr-banque-lumiere"),
			Health:  connection.Operational,
		},
		{
			ExternalID:       "sandbox-fr-banque-lumiere-pro",
			OrganizationID:   "sandbox-org-banque-lumiere",
			OrganizationName: "Banque Lumière",
			Name:             "Banque Lumière Professionnels",
			Country:          "FR",
			Business:         true,
			Products:         []string{productAccounts, productBalances, productTransactions, productReports},
			Auth:             connection.Credentials,
			Fields: []connection.CredentialField{
				usernameField("Identifiant", ""),
				passwordField("Code secret"),
			},
			Sources: []string{"openapi", "directaccess"},
			LogoURL: logo("sandbox-fr-banque-lumiere-pro"),
			Health:  connection.Operational,
		},
	}
}

// lookup returns the catalog entry with this external id.
func lookup(externalID string) (connection.Institution, bool) {
	for _, inst := range catalog() {
		if inst.ExternalID == externalID {
			return inst, true
		}
	}
	return connection.Institution{}, false
}
