package boufin

import (
	"encoding/json"
	"strings"
)

// Entity is an institution Boufin Connect reaches (a bank, a public service).
type Entity struct {
	EntityID    string   `json:"entityId"`
	Name        string   `json:"name"`
	Type        string   `json:"type"` // bank, public, ...
	PersonTypes []string `json:"personTypes"`
	Products    []string `json:"products"`
	LogoURL     string   `json:"logoUrl,omitempty"`
	Status      string   `json:"status,omitempty"` // operational, degraded, down
}

// OTPRequest asks for a Token OTP and a consent.
type OTPRequest struct {
	PersonType string `json:"personType"`
	RUT        string `json:"rut"`
	CompanyRUT string `json:"companyRut,omitempty"`
	ClientID   string `json:"clientId"`
}

// OTP is a one-time token for the Connect app, and the consent it will authorise.
type OTP struct {
	Token     string `json:"token"`
	ConsentID string `json:"consentId"`
	ExpiresIn int    `json:"expiresIn"`
}

type taskTokenRequest struct {
	Target   string `json:"target"`
	ClientID string `json:"clientId"`
}

type taskToken struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expiresIn"`
}

// Consent is one user's authorisation to read products at one entity.
type Consent struct {
	ConsentID   string   `json:"consentId"`
	Target      string   `json:"target"`
	ClientID    string   `json:"clientId"`
	PersonType  string   `json:"personType,omitempty"`
	Institution string   `json:"institution,omitempty"`
	Products    []string `json:"products"`
	Status      string   `json:"status"`
	ErrorCode   string   `json:"errorCode,omitempty"`
	CreatedAt   string   `json:"createdAt,omitempty"`
	ExpiresAt   string   `json:"expiresAt,omitempty"`
}

// ConsentPage is a page of a user's consents.
type ConsentPage struct {
	Items []Consent `json:"items"`
	Page  int       `json:"page"`
	Limit int       `json:"limit"`
	Total int       `json:"total"`
}

// ProductResult is a product pull's answer: running, or done with its data.
type ProductResult struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Accounts is the "cuentas" product's data.
type Accounts struct {
	Accounts []Account `json:"accounts"`
}

// Account is a bank product of the user.
type Account struct {
	AccountID        string       `json:"accountId"`
	Type             string       `json:"type"` // see accountTypes
	Number           string       `json:"number"`
	Name             string       `json:"name"`
	Currency         string       `json:"currency"`
	CurrentBalance   json.Number  `json:"currentBalance"`
	AvailableBalance *json.Number `json:"availableBalance,omitempty"`
	CreditLimit      *json.Number `json:"creditLimit,omitempty"`
}

// Movements is the "movimientos" product's data: per account, what the bank lists and the dates
// the list covers.
type Movements struct {
	Accounts []AccountMovements `json:"accounts"`
}

// AccountMovements is one account's movements.
type AccountMovements struct {
	AccountID string     `json:"accountId"`
	From      string     `json:"from"` // YYYY-MM-DD
	To        string     `json:"to"`
	Movements []Movement `json:"movements"`
}

// Movement is one transaction; Amount is signed (negative: money out).
type Movement struct {
	ID           string      `json:"id"`
	Date         string      `json:"date"`
	ValueDate    string      `json:"valueDate,omitempty"`
	Description  string      `json:"description"`
	Amount       json.Number `json:"amount"`
	Currency     string      `json:"currency,omitempty"`
	Pending      bool        `json:"pending,omitempty"`
	Counterparty string      `json:"counterparty,omitempty"`
	Category     string      `json:"category,omitempty"`
}

// Identity is the "validacion-identidad" product's data.
type Identity struct {
	RUT      string   `json:"rut"`
	FullName string   `json:"fullName"`
	Emails   []string `json:"emails,omitempty"`
	Phones   []string `json:"phones,omitempty"`
	Address  *Address `json:"address,omitempty"`
}

// Address is a Chilean postal address.
type Address struct {
	Street  string `json:"street,omitempty"`
	Commune string `json:"commune,omitempty"`
	City    string `json:"city,omitempty"`
	Region  string `json:"region,omitempty"`
}

// errorBody is Boufin's error answer: "Error body → { statusCode, message }" (+ our code).
type errorBody struct {
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
	Code       string `json:"code,omitempty"`
}

// NormalizeRUT writes a RUT as digits, a dash and an upper-case check digit ("11.111.111-1" →
// "11111111-1").
func NormalizeRUT(rut string) string {
	r := strings.ToUpper(strings.NewReplacer(".", "", " ", "").Replace(strings.TrimSpace(rut)))
	if r == "" {
		return ""
	}
	if !strings.Contains(r, "-") && len(r) > 1 {
		r = r[:len(r)-1] + "-" + r[len(r)-1:]
	}
	return r
}
