// Package extraction owns the data Puente reads from upstreams for a consent: accounts with
// balances, transactions (with the incremental cursors of /transactions:sync), identity, and
// reports computed from transactions, plus the extraction jobs that pull each product. Each
// upstream plugs in through the Provider interface; the consent service says what may be read,
// and the connection service holds the upstream session.
package extraction

import (
	"context"
	"errors"
	"time"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
)

// Products this service extracts and serves.
const (
	ProductAccounts     = "ACCOUNTS"
	ProductBalances     = "BALANCES"
	ProductTransactions = "TRANSACTIONS"
	ProductIdentity     = "IDENTITY"
	ProductReports      = "REPORTS"
)

// ConsentStatus is a consent's status, in the consent service's words.
type ConsentStatus string

const (
	ConsentAuthorised ConsentStatus = "AUTHORISED"
	ConsentRevoked    ConsentStatus = "REVOKED"
	ConsentExpired    ConsentStatus = "EXPIRED"
	ConsentRejected   ConsentStatus = "REJECTED"
)

// Consent is what this service needs of a consent, read from the consent service.
type Consent struct {
	ID            string
	ClientID      string
	UserID        string
	InstitutionID string
	ConnectionID  string
	Products      []string
	Status        ConsentStatus
}

// Consents reads consents from the consent service, with the service token.
type Consents interface {
	// Get returns one of clientID's consents; another client's is ErrConsentNotFound.
	Get(ctx context.Context, clientID, id string) (Consent, error)
	// ListAuthorised returns a user's AUTHORISED consents.
	ListAuthorised(ctx context.Context, clientID, userID string) ([]Consent, error)
}

// Link is a connection as the upstream knows it, read from the connection service.
type Link struct {
	ConnectionID          string
	Succeeded             bool
	FailureReason         string // when not Succeeded: the connection's reason (LOGIN_REQUIRED, ...)
	Provider              string
	InstitutionID         string
	InstitutionExternalID string
	Country               string
	State                 []byte // the provider's session state: only its adapter reads it
	// ClientID and ConsentID are whose data is read: a provider that answers later (a report by
	// webhook) sends them upstream as its external reference and gets them back.
	ClientID  string
	ConsentID string
	// Documents are what the upstream pushed for this consent (EventSink), latest per kind.
	Documents map[string]Document
}

// Document is something an upstream pushed by webhook (a Klavi report), kept sealed for the
// provider's adapter to read on the next refresh.
type Document struct {
	Kind       string
	Body       []byte
	ReceivedAt time.Time
}

// PushedDocument is a document an upstream webhook carried, and whose consent it is.
type PushedDocument struct {
	ClientID  string
	ConsentID string
	Kind      string
	Body      []byte
}

// EventSink is implemented by a provider whose upstream pushes data by webhook instead of
// answering reads (Klavi's reports). The service keeps each document sealed, per consent and kind,
// and refreshes the consent, whose Link then carries it.
type EventSink interface {
	// Documents returns what a verified upstream webhook carries; none when it carries no data.
	Documents(ctx context.Context, eventType string, body []byte) ([]PushedDocument, error)
}

// Connections reads connections' links from the connection service.
type Connections interface {
	Link(ctx context.Context, clientID, connectionID string) (Link, error)
}

// Provider is one upstream's side of reading data. Every method may return a *ProviderError.
type Provider interface {
	// Name is the provider's id, as the connection service names it ("sandbox", "syncfy", ...).
	Name() string
	Accounts(ctx context.Context, l Link) ([]UpstreamAccount, error)
	// Transactions returns an account's transactions as the upstream has them now, and the
	// dates they cover: a booked transaction stored here within those dates and missing from
	// the list is gone upstream.
	Transactions(ctx context.Context, l Link, accountUpstreamID string) (UpstreamTransactions, error)
	Identity(ctx context.Context, l Link) (Identity, error)
}

// ProviderError is an upstream failure with the reason Puente reports for it.
type ProviderError struct {
	Reason string // LOGIN_REQUIRED, INSTITUTION_UNAVAILABLE, UPSTREAM_ERROR, ...
	// Temporary failures are retried by the job that met them.
	Temporary bool
	Err       error
}

func (e *ProviderError) Error() string { return "upstream: " + e.Reason + ": " + e.Err.Error() }
func (e *ProviderError) Unwrap() error { return e.Err }

// Reasons an extraction or a refresh fails.
const (
	ReasonConsentNotAuthorised = "CONSENT_NOT_AUTHORISED"
	ReasonProductNotConsented  = "PRODUCT_NOT_CONSENTED"
	ReasonLoginRequired        = "LOGIN_REQUIRED"
	ReasonNoProvider           = "PROVIDER_NOT_SUPPORTED"
	ReasonInternal             = "INTERNAL"
	// ReasonUpstreamSyncFailed: the provider's own synchronization of the account failed (its
	// data is as the provider last had it).
	ReasonUpstreamSyncFailed = "UPSTREAM_SYNC_FAILED"
)

// reasonOf is the reason to report for err.
func reasonOf(err error) string {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Reason != "" {
		return ae.Reason
	}
	return ReasonInternal
}

// UpstreamAccount is an account as the upstream returns it.
type UpstreamAccount struct {
	ID       string
	Type     string // DEPOSITORY, CREDIT, LOAN, INVESTMENT, OTHER
	Subtype  string
	Name     string
	Mask     string
	Currency string
	BankCode string
	Balance  Balance
}

// Balance is an account's balances in minor units.
type Balance struct {
	Current   int64
	Available *int64
	Limit     *int64
	AsOf      time.Time
}

// UpstreamTransaction is a transaction as the upstream returns it.
type UpstreamTransaction struct {
	ID               string
	AmountMinor      int64
	Currency         string
	Pending          bool
	BookingDate      string // YYYY-MM-DD
	ValueDate        string
	Description      string
	CounterpartyName string
	CounterpartyType string
	Category         string
}

// UpstreamTransactions is an account's transactions and the dates they cover.
type UpstreamTransactions struct {
	From, To string // YYYY-MM-DD, inclusive
	Items    []UpstreamTransaction
}

// Account is a stored account.
type Account struct {
	ID            string
	ClientID      string
	ConsentID     string
	UserID        string
	InstitutionID string
	UpstreamAccount
	HasBalance bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Transaction is a stored transaction. Its ID never changes, even when the upstream's does (a
// pending transaction that books).
type Transaction struct {
	ID        string
	ClientID  string
	ConsentID string
	AccountID string
	UpstreamTransaction
	Removed   bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version is the consent's change number of the transaction's last change; Created that of
	// its first. The cursors of SyncTransactions are change numbers.
	Version, Created int64
}

// Identity is the account holder as the institution knows them.
type Identity struct {
	Names     []string  `json:"names,omitempty"`
	TaxIDType string    `json:"tax_id_type,omitempty"`
	TaxID     string    `json:"tax_id,omitempty"`
	Emails    []string  `json:"emails,omitempty"`
	Phones    []string  `json:"phones,omitempty"`
	Addresses []Address `json:"addresses,omitempty"`
	UpdatedAt time.Time `json:"-"`
}

type Address struct {
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Counts are what an extraction changed.
type Counts struct {
	Added, Modified, Removed int
}

func (c *Counts) add(o Counts) {
	c.Added, c.Modified, c.Removed = c.Added+o.Added, c.Modified+o.Modified, c.Removed+o.Removed
}

// JobStatus is where an extraction or a report stands.
type JobStatus string

const (
	Pending   JobStatus = "PENDING"
	Succeeded JobStatus = "SUCCEEDED"
	Failed    JobStatus = "FAILED"
)

// Extraction is a request to pull one product of a consent.
type Extraction struct {
	ID         string
	ClientID   string
	ConsentID  string
	Product    string
	Status     JobStatus
	Reason     string
	Counts     Counts
	CreatedAt  time.Time
	FinishedAt time.Time
}

// Report is a report on a consent, generated in the background.
type Report struct {
	ID         string
	ClientID   string
	ConsentID  string
	Type       string // CASH_FLOW
	Status     JobStatus
	Reason     string
	CashFlow   *CashFlow
	CreatedAt  time.Time
	FinishedAt time.Time
}

// AccountResult is how refreshing one account went.
type AccountResult struct {
	AccountID  string
	UpstreamID string // the provider's id of the account
	OK         bool
	Reason     string
}

// RefreshResult is how refreshing a consent went: per account, or Reason when nothing could be
// refreshed.
type RefreshResult struct {
	Accounts []AccountResult
	Reason   string
	// Counts are what changed of the product pulled: transactions when they were, otherwise
	// accounts, or the identity.
	Counts Counts
}

// Page is where a list resumes.
type Page = page.Page

var (
	ErrConsentNotFound    = apierr.New(apierr.NotFound, "NOT_FOUND", "consent not found")
	ErrAccountNotFound    = apierr.New(apierr.NotFound, "NOT_FOUND", "account not found")
	ErrExtractionNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "extraction not found")
	ErrReportNotFound     = apierr.New(apierr.NotFound, "NOT_FOUND", "report not found")
	ErrIdentityNotFound   = apierr.New(apierr.NotFound, "NOT_FOUND", "no identity extracted for this consent yet: request an IDENTITY extraction")
	ErrPermissionDenied   = apierr.New(apierr.PermissionDenied, "PERMISSION_DENIED", "this caller may not do that")
	// ErrConsentEnded is what ingesting for a consent that has ended meets: its data is not
	// written, since it is about to be deleted.
	ErrConsentEnded      = apierr.New(apierr.PermissionDenied, "CONSENT_NOT_AUTHORISED", "the consent has ended; its data is not kept")
	ErrRequestIDReused   = idempotency.ErrRequestIDReused
	ErrRequestInProgress = idempotency.ErrRequestInProgress
)

// TransactionFilter narrows a list of an account's transactions.
type TransactionFilter struct {
	From, To string // YYYY-MM-DD, inclusive; "" unbounded
}

// TransactionPage is where a list of transactions resumes: after (BookingDate, ID), newest first.
type TransactionPage struct {
	BookingDate string
	ID          string
	Limit       int
}

// Store keeps the extracted data. Methods taking a client id never see another client's rows.
type Store interface {
	// EnsureConsent records a consent whose data is about to be written (once).
	EnsureConsent(ctx context.Context, c Consent, at time.Time) error
	// EndConsent records that a consent ended at `at` and that its data goes at purgeAt, with a
	// job to delete it then. Later ingests for it fail with ErrConsentEnded.
	EndConsent(ctx context.Context, clientID, consentID string, at, purgeAt time.Time) error
	// Purge deletes an ended consent's data if its time has come; if it has not, it returns
	// when it will.
	Purge(ctx context.Context, consentID string, now time.Time) (notBefore time.Time, err error)

	// SaveAccounts upserts a consent's accounts by upstream id and returns them with their ids,
	// and how many were new or changed.
	SaveAccounts(ctx context.Context, c Consent, accs []UpstreamAccount, withBalances bool, at time.Time) ([]Account, Counts, error)
	// SaveTransactions reconciles an account's stored transactions with the upstream's, under
	// the consent's lock, and returns what changed.
	// An upstream list read before the last one applied (fetchedAt) is ignored. Changed
	// transactions are announced by a "transactions.updates_available" event, with the data.
	SaveTransactions(ctx context.Context, a Account, up UpstreamTransactions, fetchedAt, at time.Time) (Counts, error)
	SaveIdentity(ctx context.Context, c Consent, sealed []byte, at time.Time) (added bool, err error)

	// SaveDocument keeps the latest document of a kind an upstream pushed for a consent (sealed).
	SaveDocument(ctx context.Context, c Consent, kind string, sealed []byte, at time.Time) error
	// EnqueueRefresh queues a refresh of a consent's data (JobRefresh).
	EnqueueRefresh(ctx context.Context, clientID, consentID string) error
	// Documents returns a consent's pushed documents by kind, their bodies sealed.
	Documents(ctx context.Context, clientID, consentID string) (map[string]Document, error)

	GetAccount(ctx context.Context, clientID, id string) (Account, error)
	ListAccounts(ctx context.Context, clientID string, consentIDs []string, p Page) ([]Account, error)
	ListTransactions(ctx context.Context, clientID, accountID string, f TransactionFilter, p TransactionPage) ([]Transaction, error)
	// Changes returns the consent's change number now and, oldest first, up to limit
	// transactions whose last change is numbered after `after` and at most `until` (0: now).
	Changes(ctx context.Context, clientID, consentID string, after, until int64, limit int) (items []Transaction, now int64, err error)
	// Identity returns the sealed identity of a consent.
	Identity(ctx context.Context, clientID, consentID string) ([]byte, time.Time, error)

	CreateExtraction(ctx context.Context, e Extraction) error
	GetExtraction(ctx context.Context, clientID, id string) (Extraction, error)
	// FinishExtraction records an extraction's outcome with its "extraction.completed" event,
	// once: a finished extraction is left alone.
	FinishExtraction(ctx context.Context, e Extraction) error

	CreateReport(ctx context.Context, r Report) error
	GetReport(ctx context.Context, clientID, id string) (Report, error)
	FinishReport(ctx context.Context, r Report) error

	Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, create func(Store) ([]byte, error)) ([]byte, error)
	DeleteExpired(ctx context.Context, at time.Time) (int64, error)
}
