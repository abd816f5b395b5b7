package powens

import (
	"bytes"
	"encoding/json"
)

// AuthInit is POST /auth/init's answer.
type AuthInit struct {
	AuthToken string `json:"auth_token"`
	Type      string `json:"type"` // permanent | temporary
	IDUser    int64  `json:"id_user"`
	ExpiresIn int64  `json:"expires_in,omitempty"`
}

// AuthCode is GET /auth/token/code's answer.
type AuthCode struct {
	Code      string `json:"code"`
	Type      string `json:"type"`
	Access    string `json:"access"`
	ExpiresIn int64  `json:"expires_in,omitempty"`
}

// AccessToken is POST /auth/token/access's answer.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
}

// Connector is a bank or provider Powens connects to.
type Connector struct {
	ID            int64             `json:"id"`
	UUID          string            `json:"uuid"`
	Name          string            `json:"name"`
	Hidden        bool              `json:"hidden"`
	Capabilities  []string          `json:"capabilities"`
	AuthMechanism string            `json:"auth_mechanism"`
	Sources       []ConnectorSource `json:"sources"`
	Fields        []Field           `json:"fields"`
	Countries     []Country         `json:"countries"`
}

// ConnectorSource is a PSD2 sub-scope of a connector.
type ConnectorSource struct {
	ID            int64    `json:"id"`
	IDConnector   int64    `json:"id_connector"`
	Name          string   `json:"name"`
	AuthMechanism string   `json:"auth_mechanism"`
	Disabled      *string  `json:"disabled"` // must be null to use the source
	Priority      int      `json:"priority"` // add the lowest first
	AccountTypes  []string `json:"account_types,omitempty"`
	Capabilities  []string `json:"capabilities,omitempty"`
}

// Country is a connector's country.
type Country struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Field is a credentials field of a connector, or one a connection asks for again.
type Field struct {
	Name           string       `json:"name"`
	Type           string       `json:"type"` // text, list, date, number, password
	AuthMechanisms []string     `json:"auth_mechanisms,omitempty"`
	Label          string       `json:"label"`
	Description    string       `json:"description,omitempty"`
	Required       bool         `json:"required"`
	Regex          string       `json:"regex,omitempty"`
	Values         []FieldValue `json:"values,omitempty"`
}

// FieldValue is an option of a list field.
type FieldValue struct {
	Value string `json:"value"`
	Label string `json:"label"`
}

// Connection is a user's link to a connector.
type Connection struct {
	ID            int64              `json:"id"`
	IDUser        int64              `json:"id_user"`
	IDConnector   int64              `json:"id_connector"`
	ConnectorUUID string             `json:"connector_uuid"`
	State         *string            `json:"state"` // null: the last sync went well
	Error         *string            `json:"error"`
	ErrorMessage  *string            `json:"error_message"`
	Fields        []Field            `json:"fields,omitempty"`
	Active        bool               `json:"active"`
	Sources       []ConnectionSource `json:"sources,omitempty"`
	Accounts      []Account          `json:"accounts,omitempty"`
	AllAccounts   []Account          `json:"all_accounts,omitempty"`
}

// StateName is the connection's state, "" when null.
func (c Connection) StateName() string {
	if c.State != nil {
		return *c.State
	}
	if c.Error != nil { // the legacy field, when a server sends only it
		return *c.Error
	}
	return ""
}

// ConnectionSource is a source added to a connection.
type ConnectionSource struct {
	ID                int64   `json:"id"`
	IDConnection      int64   `json:"id_connection"`
	IDConnectorSource int64   `json:"id_connector_source"`
	Name              string  `json:"name"`
	State             *string `json:"state"`
}

// Currency is an account's currency.
type Currency struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Symbol    string `json:"symbol,omitempty"`
	Precision *int   `json:"precision,omitempty"`
}

// Account is a bank account.
type Account struct {
	ID           int64           `json:"id"`
	IDConnection int64           `json:"id_connection"`
	IDUser       int64           `json:"id_user"`
	IDSource     int64           `json:"id_source"`
	Name         string          `json:"name"`
	OriginalName string          `json:"original_name"`
	Balance      *float64        `json:"balance"`
	Coming       *float64        `json:"coming"`
	Currency     Currency        `json:"currency"`
	Type         string          `json:"type"`
	Number       *string         `json:"number"`
	IBAN         *string         `json:"iban"`
	Disabled     json.RawMessage `json:"disabled,omitempty"` // a date (or true) while disabled
	Deleted      json.RawMessage `json:"deleted,omitempty"`
	LastUpdate   *string         `json:"last_update"`
}

// IsDisabled reports whether the account is not synchronised (not activated, GDPR).
func (a Account) IsDisabled() bool { return set(a.Disabled) }

// IsDeleted reports whether the account was deleted at the bank.
func (a Account) IsDeleted() bool { return set(a.Deleted) }

// set reports whether a date-or-bool field holds something other than null or false.
func set(raw json.RawMessage) bool {
	v := bytes.TrimSpace(raw)
	return len(v) > 0 && !bytes.Equal(v, []byte("null")) && !bytes.Equal(v, []byte("false"))
}

// Accounts is GET /users/me/accounts's answer.
type Accounts struct {
	Accounts []Account `json:"accounts"`
}

// Transaction is a bank transaction.
type Transaction struct {
	ID               int64         `json:"id"`
	IDAccount        int64         `json:"id_account"`
	Date             string        `json:"date"`  // YYYY-MM-DD, debit date
	RDate            string        `json:"rdate"` // YYYY-MM-DD, real date
	VDate            *string       `json:"vdate"` // YYYY-MM-DD, value date
	Value            *float64      `json:"value"`
	Type             string        `json:"type"`
	Wording          string        `json:"wording"`
	OriginalWording  string        `json:"original_wording"`
	Coming           bool          `json:"coming"`
	Active           *bool         `json:"active"`
	Deleted          *string       `json:"deleted"`
	Counterparty     *Counterparty `json:"counterparty"`
	OriginalCurrency *Currency     `json:"original_currency"`
}

// Counterparty is the other side of a transaction.
type Counterparty struct {
	Label string `json:"label"`
	Type  string `json:"type"` // creditor, debtor
}

// TransactionsList is a page of transactions.
type TransactionsList struct {
	Transactions []Transaction `json:"transactions"`
	Links        *Links        `json:"_links,omitempty"`
}

// Links are a list's pagination links.
type Links struct {
	Self *Link `json:"self"`
	Next *Link `json:"next"`
	Prev *Link `json:"prev"`
}

// Link is one pagination link.
type Link struct {
	Href string `json:"href"`
}

// ServiceError is Powens' error body.
type ServiceError struct {
	Code        string  `json:"code"`
	Description string  `json:"description"`
	Message     *string `json:"message,omitempty"`
	RequestID   *string `json:"request_id,omitempty"`
	RequestIDFm *string `json:"requestId,omitempty"` // what the Formance client reads
}
