package klavi

import (
	"bytes"
	"encoding/json"
)

// Event is one API event of an event webhook (whose body is an array of them).
type Event struct {
	PartnerAppID string          `json:"partnerAppId"`
	EventID      string          `json:"eventId"`
	EventType    string          `json:"eventType"`
	EventName    string          `json:"eventName"`
	EventTime    string          `json:"eventTime"`
	Payload      EventPayload    `json:"payload"`
	ExternalInfo json.RawMessage `json:"externalInfo,omitempty"`
}

// EventPayload is an event's payload: link and consent events name the link and the consent;
// product_generated_failed names the product and its code.
type EventPayload struct {
	PersonalTaxID string          `json:"personalTaxId"`
	BusinessTaxID string          `json:"businessTaxId"`
	LinkID        string          `json:"linkId"`
	Consents      *EventConsent   `json:"consents,omitempty"`
	ProductName   string          `json:"productName,omitempty"`
	Code          json.RawMessage `json:"code,omitempty"`
	Message       string          `json:"message,omitempty"`
}

// EventConsent is the consent a consent_* event is about.
type EventConsent struct {
	ConsentID       string `json:"consentId"`
	ExternalTrackID string `json:"externalTrackId"`
	InstitutionCode string `json:"institutionCode"`
}

// IsReport reports whether a webhook body is a report (a JSON object) rather than events (an
// array).
func IsReport(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// ParseEvents reads an event webhook body.
func ParseEvents(body []byte) ([]Event, error) {
	var out []Event
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ExternalInfo is what Puente sends Klavi with a report request and gets back with the report.
type ExternalInfo struct {
	ClientID  string `json:"client_id"`
	ConsentID string `json:"consent_id"`
}

// Report is a report pushed by the product webhook; only what Puente reads of it.
type Report struct {
	Code             int               `json:"code"`
	Message          string            `json:"message"`
	RequestID        string            `json:"requestId"`
	ProductName      string            `json:"productName"`
	ProductVersion   string            `json:"productVersion"`
	ProductReportID  string            `json:"productReportId"`
	ProductTime      string            `json:"productReportTime"`
	EnquiryCPF       string            `json:"enquiryCpf"`
	EnquiryCNPJ      string            `json:"enquiryCnpj,omitempty"`
	Links            []ReportLink      `json:"links"`
	CheckingAccounts []CheckingAccount `json:"checkingAccounts"`
	ExternalInfo     ExternalInfo      `json:"externalInfo"`
}

// ReportLink is a link a report covers.
type ReportLink struct {
	LinkID          string `json:"linkId"`
	InstitutionCode string `json:"institutionCode"`
	Consents        []struct {
		ConsentID string `json:"consentId"`
	} `json:"consents"`
}

// CheckingAccount is one account of a checking-account report.
type CheckingAccount struct {
	BrandName          string              `json:"brandName"`
	BacenName          string              `json:"bacenName"`
	CompeCode          string              `json:"compeCode"`
	CompanyCnpj        string              `json:"companyCnpj"`
	BranchCode         string              `json:"branchCode"`
	Number             string              `json:"number"`
	CheckDigit         string              `json:"checkDigit"`
	Subtype            string              `json:"subtype"`
	CivilName          string              `json:"civilName"`
	Balances           Balances            `json:"balances"`
	TransactionDetails []TransactionDetail `json:"transactionDetails"`
}

// Amount is an amount with its currency.
type Amount struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Balances are an account's balances.
type Balances struct {
	AvailableAmount             Amount `json:"availableAmount"`
	BlockedAmount               Amount `json:"blockedAmount"`
	AutomaticallyInvestedAmount Amount `json:"automaticallyInvestedAmount"`
}

// TransactionDetail is one transaction of an account.
type TransactionDetail struct {
	TransactionDate                string `json:"transactionDate"`
	TransactionDateTime            string `json:"transactionDateTime"`
	TransactionID                  string `json:"transactionId"`
	CompletedAuthorisedPaymentType string `json:"completedAuthorisedPaymentType"`
	CreditDebitType                string `json:"creditDebitType"`
	TransactionAmount              Amount `json:"transactionAmount"`
	TransactionName                string `json:"transactionName"`
	PartieCnpjCpf                  string `json:"partieCnpjCpf"`
	PartiePersonType               string `json:"partiePersonType"`
	Type                           string `json:"type"`
}

// UnmarshalJSON reads an amount given as an object {amount, currency} or as a bare string.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = Amount{Amount: s}
		return nil
	}
	type plain Amount
	return json.Unmarshal(b, (*plain)(a))
}
