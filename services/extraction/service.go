package extraction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
	"puente.dev/pkg/secretbox"
)

// Service is the extraction logic over a Store, the consent and connection services, and the
// providers' adapters.
type Service struct {
	store       Store
	consents    Consents
	connections Connections
	providers   map[string]Provider
	// slots bound each provider's upstream reads in this process.
	slots map[string]chan struct{}
	box   *secretbox.Box
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
}

// NewService checks cfg and returns the service.
func NewService(store Store, consents Consents, connections Connections, providers []Provider, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("extraction config: %w", err)
	}
	box, err := secretbox.Parse(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("extraction config: PUENTE_ENCRYPTION_KEYS: %w", err)
	}
	s := &Service{
		store: store, consents: consents, connections: connections,
		providers: map[string]Provider{}, slots: map[string]chan struct{}{},
		box: box, cfg: cfg, log: log, now: time.Now,
	}
	for _, p := range providers {
		s.providers[p.Name()] = p
		s.slots[p.Name()] = make(chan struct{}, cfg.ProviderConcurrency)
	}
	return s, nil
}

// SetClock replaces the clock, for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// clock is now at the database's (microsecond) precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Service) withStore(st Store) *Service {
	c := *s
	c.store = st
	return &c
}

// Idempotent runs fn once per (scope, requestID); repeats get fn's first result back.
func (s *Service) Idempotent(ctx context.Context, scope, requestID string, fingerprint []byte, fn func(*Service) ([]byte, error)) ([]byte, error) {
	if requestID == "" {
		return fn(s)
	}
	return idempotency.Sealed(ctx, s.box, s.store.Idempotent, scope, requestID, fingerprint, func(tx Store) ([]byte, error) {
		return fn(s.withStore(tx))
	})
}

// Housekeep is the service's periodic work: it deletes request ids past their day.
func (s *Service) Housekeep(ctx context.Context) error {
	n, err := s.store.DeleteExpired(ctx, s.clock())
	if n > 0 {
		s.log.InfoContext(ctx, "deleted expired rows", "rows", n)
	}
	return err
}

// ---- who may read what

// consentError is the PermissionDenied of reading through a consent that is not AUTHORISED.
func consentError(c Consent) error {
	reason := ReasonConsentNotAuthorised
	switch c.Status {
	case ConsentRevoked, ConsentExpired:
		reason = "CONSENT_" + string(c.Status)
	}
	return apierr.New(apierr.PermissionDenied, reason, fmt.Sprintf("the consent is %s: no data can be read or extracted through it", c.Status))
}

// usable reports why product of c cannot be read, or nil.
func usable(c Consent, product string) error {
	if c.Status != ConsentAuthorised {
		return consentError(c)
	}
	if !slices.Contains(c.Products, product) {
		return apierr.New(apierr.PermissionDenied, ReasonProductNotConsented, "the consent does not cover "+product)
	}
	return nil
}

// consent returns one of p's client's consents that p may see: a task token or a widget session
// sees its own user's only, and a task token naming a consent that one only.
func (s *Service) consent(ctx context.Context, p caller.Principal, id string) (Consent, error) {
	if p.ClientID == "" {
		return Consent{}, ErrPermissionDenied
	}
	c, err := s.consents.Get(ctx, p.ClientID, id)
	if err != nil {
		return Consent{}, err
	}
	if (p.UserID != "" && c.UserID != p.UserID) || (p.Kind == apiv1.Principal_PRINCIPAL_TASK && p.ConsentID != "" && p.ConsentID != c.ID) {
		return Consent{}, ErrConsentNotFound
	}
	return c, nil
}

// readable returns the consent if p may read product through it.
func (s *Service) readable(ctx context.Context, p caller.Principal, id, product string) (Consent, error) {
	c, err := s.consent(ctx, p, id)
	if err != nil {
		return Consent{}, err
	}
	return c, usable(c, product)
}

// showBalance hides the balance of an account whose consent does not cover BALANCES.
func showBalance(a Account, c Consent) Account {
	if !slices.Contains(c.Products, ProductBalances) {
		a.HasBalance, a.Balance = false, Balance{}
	}
	return a
}

// ---- reads

// ListAccounts lists the accounts of one consent, or of a user's AUTHORISED consents that
// cover ACCOUNTS.
func (s *Service) ListAccounts(ctx context.Context, p caller.Principal, consentID, userID string, pg Page) ([]Account, error) {
	if p.UserID != "" {
		if userID != "" && userID != p.UserID {
			return nil, nil
		}
		userID = p.UserID
	}
	var consents []Consent
	switch {
	case consentID != "":
		c, err := s.readable(ctx, p, consentID, ProductAccounts)
		if err != nil {
			return nil, err
		}
		if userID != "" && c.UserID != userID {
			return nil, nil
		}
		consents = []Consent{c}
	case userID != "":
		all, err := s.consents.ListAuthorised(ctx, p.ClientID, userID)
		if err != nil {
			return nil, err
		}
		for _, c := range all {
			if usable(c, ProductAccounts) == nil && (p.Kind != apiv1.Principal_PRINCIPAL_TASK || p.ConsentID == "" || p.ConsentID == c.ID) {
				consents = append(consents, c)
			}
		}
	default:
		return nil, apierr.Invalid("consent_id", "consent_id or user_id is required")
	}
	if len(consents) == 0 {
		return nil, nil
	}
	byID := make(map[string]Consent, len(consents))
	idList := make([]string, 0, len(consents))
	for _, c := range consents {
		byID[c.ID] = c
		idList = append(idList, c.ID)
	}
	accs, err := s.store.ListAccounts(ctx, p.ClientID, idList, pg)
	if err != nil {
		return nil, err
	}
	for i := range accs {
		accs[i] = showBalance(accs[i], byID[accs[i].ConsentID])
	}
	return accs, nil
}

// account returns an account p may read product of, with its consent.
func (s *Service) account(ctx context.Context, p caller.Principal, id, product string) (Account, Consent, error) {
	if p.ClientID == "" {
		return Account{}, Consent{}, ErrPermissionDenied
	}
	a, err := s.store.GetAccount(ctx, p.ClientID, id)
	if err != nil {
		return Account{}, Consent{}, err
	}
	c, err := s.readable(ctx, p, a.ConsentID, product)
	if errors.Is(err, ErrConsentNotFound) {
		return Account{}, Consent{}, ErrAccountNotFound
	}
	if err != nil {
		return Account{}, Consent{}, err
	}
	return showBalance(a, c), c, nil
}

// GetAccount returns an account, with its balance when the consent covers BALANCES.
func (s *Service) GetAccount(ctx context.Context, p caller.Principal, id string) (Account, error) {
	a, _, err := s.account(ctx, p, id, ProductAccounts)
	return a, err
}

// ListTransactions lists an account's transactions, newest first.
func (s *Service) ListTransactions(ctx context.Context, p caller.Principal, accountID string, f TransactionFilter, pg TransactionPage) ([]Transaction, error) {
	for _, d := range []struct{ field, value string }{{"from_date", f.From}, {"to_date", f.To}} {
		if _, err := time.Parse(time.DateOnly, d.value); d.value != "" && err != nil {
			return nil, apierr.Invalid(d.field, "is not a date (YYYY-MM-DD)")
		}
	}
	if f.From != "" && f.To != "" && f.From > f.To {
		return nil, apierr.Invalid("from_date", "must not be after to_date")
	}
	if _, _, err := s.account(ctx, p, accountID, ProductTransactions); err != nil {
		return nil, err
	}
	return s.store.ListTransactions(ctx, p.ClientID, accountID, f, pg)
}

// SyncResult is a page of changes to a consent's transactions.
type SyncResult struct {
	Added, Modified []Transaction
	Removed         []Transaction
	NextCursor      string
	HasMore         bool
}

var errMutatedWhilePaging = apierr.New(apierr.FailedPrecondition, "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
	"the transactions changed while you paged through them: sync again from the cursor you started with")

// SyncTransactions returns up to count changes to a consent's transactions after cursor.
func (s *Service) SyncTransactions(ctx context.Context, p caller.Principal, consentID, cursor string, count int) (SyncResult, error) {
	cur, err := decodeCursor(consentID, cursor)
	if err != nil {
		return SyncResult{}, err
	}
	if count <= 0 {
		count = DefaultPageSize
	}
	if _, err := s.readable(ctx, p, consentID, ProductTransactions); err != nil {
		return SyncResult{}, err
	}
	items, now, err := s.store.Changes(ctx, p.ClientID, consentID, cur.Position, cur.End, count+1)
	if err != nil {
		return SyncResult{}, err
	}
	end := now
	if cur.paging() {
		if now != cur.End {
			return SyncResult{}, errMutatedWhilePaging
		}
		end = cur.End
	}
	var r SyncResult
	if len(items) > count {
		items, r.HasMore = items[:count], true
		r.NextCursor = encodeCursor(consentID, syncCursor{Origin: cur.Origin, Position: items[count-1].Version, End: end})
	} else {
		r.NextCursor = encodeCursor(consentID, syncCursor{Origin: max(end, cur.Origin), Position: max(end, cur.Origin)})
	}
	for _, t := range items {
		switch {
		case t.Removed && t.Created > cur.Origin:
			// Came and went since the client's last sync: it never saw it.
		case t.Removed:
			r.Removed = append(r.Removed, t)
		case t.Created > cur.Origin:
			r.Added = append(r.Added, t)
		default:
			r.Modified = append(r.Modified, t)
		}
	}
	return r, nil
}

// GetIdentity returns the identity extracted for a consent.
func (s *Service) GetIdentity(ctx context.Context, p caller.Principal, consentID string) (Identity, error) {
	if _, err := s.readable(ctx, p, consentID, ProductIdentity); err != nil {
		return Identity{}, err
	}
	sealed, at, err := s.store.Identity(ctx, p.ClientID, consentID)
	if err != nil {
		return Identity{}, err
	}
	raw, err := s.box.Open(sealed, []byte("identity:"+consentID))
	if err != nil {
		return Identity{}, fmt.Errorf("open identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(raw, &id); err != nil {
		return Identity{}, fmt.Errorf("decode identity: %w", err)
	}
	id.UpdatedAt = at
	return id, nil
}

// ---- extractions

// Job kinds. Args: {"id": "ext_…" | "rpt_…" | "cns_…"}.
const (
	JobExtract = "extraction.run"
	JobReport  = "report.generate"
	JobPurge   = "consent.purge"
	JobRefresh = "consent.refresh"
)

type jobArgs struct {
	ID string `json:"id"`
}

// CreateExtraction asks for one product of a consent to be pulled in the background.
func (s *Service) CreateExtraction(ctx context.Context, p caller.Principal, consentID, product string) (Extraction, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_CLIENT {
		return Extraction{}, ErrPermissionDenied
	}
	if !slices.Contains([]string{ProductAccounts, ProductBalances, ProductTransactions, ProductIdentity}, product) {
		return Extraction{}, apierr.Invalid("product", "must be ACCOUNTS, BALANCES, TRANSACTIONS or IDENTITY")
	}
	if _, err := s.readable(ctx, p, consentID, product); err != nil {
		return Extraction{}, err
	}
	e := Extraction{ID: ids.New("ext"), ClientID: p.ClientID, ConsentID: consentID, Product: product, Status: Pending, CreatedAt: s.clock()}
	if err := s.store.CreateExtraction(ctx, e); err != nil {
		return Extraction{}, fmt.Errorf("create extraction: %w", err)
	}
	return e, nil
}

func (s *Service) GetExtraction(ctx context.Context, p caller.Principal, id string) (Extraction, error) {
	if p.ClientID == "" {
		return Extraction{}, ErrPermissionDenied
	}
	return s.store.GetExtraction(ctx, p.ClientID, id)
}

// RefreshConsent pulls what a consent covers of accounts, balances and transactions now, for
// another service (the sync service). A consent that cannot be refreshed is a result with a
// reason, not an error: errors are for what a retry may fix.
//
// upstreamFailed are the provider's ids of accounts whose synchronization the provider reported
// failing (a sync's batch refresh): their results are ERROR UPSTREAM_SYNC_FAILED.
func (s *Service) RefreshConsent(ctx context.Context, p caller.Principal, clientID, consentID string, upstreamFailed ...string) (RefreshResult, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return RefreshResult{}, ErrPermissionDenied
	}
	c, err := s.consents.Get(ctx, clientID, consentID)
	if err != nil {
		return RefreshResult{}, err
	}
	if c.Status != ConsentAuthorised {
		return RefreshResult{Reason: reasonOf(consentError(c))}, nil
	}
	var products []string
	for _, prod := range []string{ProductAccounts, ProductBalances, ProductTransactions} {
		if slices.Contains(c.Products, prod) {
			products = append(products, prod)
		}
	}
	if len(products) == 0 {
		return RefreshResult{Reason: ReasonProductNotConsented}, nil
	}
	r, err := s.pull(ctx, c, products)
	var pe *ProviderError
	if errors.As(err, &pe) || errors.Is(err, ErrConsentEnded) {
		return RefreshResult{Reason: reasonOf(err)}, nil
	}
	if !slices.Contains(products, ProductTransactions) {
		r.Counts = Counts{} // the response counts transactions only
	}
	for i, a := range r.Accounts {
		if a.OK && slices.Contains(upstreamFailed, a.UpstreamID) {
			r.Accounts[i].OK, r.Accounts[i].Reason = false, ReasonUpstreamSyncFailed
		}
	}
	return r, err
}

// pull reads products of c (AUTHORISED) from its upstream and stores them.
func (s *Service) pull(ctx context.Context, c Consent, products []string) (RefreshResult, error) {
	link, prov, err := s.upstream(ctx, c)
	if err != nil {
		return RefreshResult{}, err
	}
	release, err := s.acquire(ctx, prov.Name())
	if err != nil {
		return RefreshResult{}, err
	}
	defer release()
	now := s.clock()
	if err := s.store.EnsureConsent(ctx, c, now); err != nil {
		return RefreshResult{}, err
	}
	var r RefreshResult
	if slices.ContainsFunc(products, func(p string) bool { return p != ProductIdentity }) {
		ups, err := prov.Accounts(ctx, link)
		if err != nil {
			return RefreshResult{}, err
		}
		accs, counts, err := s.store.SaveAccounts(ctx, c, ups, slices.Contains(c.Products, ProductBalances), now)
		if err != nil {
			return RefreshResult{}, err
		}
		if !slices.Contains(products, ProductTransactions) {
			r.Counts.add(counts)
		}
		for _, a := range accs {
			res := AccountResult{AccountID: a.ID, UpstreamID: a.UpstreamAccount.ID, OK: true}
			if slices.Contains(products, ProductTransactions) {
				if counts, err := s.pullTransactions(ctx, link, prov, a, now); err != nil {
					var pe *ProviderError
					if !errors.As(err, &pe) {
						return RefreshResult{}, err
					}
					res.OK, res.Reason = false, pe.Reason
				} else {
					r.Counts.add(counts)
				}
			}
			r.Accounts = append(r.Accounts, res)
		}
	}
	if slices.Contains(products, ProductIdentity) {
		id, err := prov.Identity(ctx, link)
		if err != nil {
			return RefreshResult{}, err
		}
		raw, err := json.Marshal(id)
		if err != nil {
			return RefreshResult{}, err
		}
		added, err := s.store.SaveIdentity(ctx, c, s.box.Seal(raw, []byte("identity:"+c.ID)), now)
		if err != nil {
			return RefreshResult{}, err
		}
		if added {
			r.Counts.Added++
		} else {
			r.Counts.Modified++
		}
	}
	return r, nil
}

func (s *Service) pullTransactions(ctx context.Context, link Link, prov Provider, a Account, now time.Time) (Counts, error) {
	fetchedAt := s.clock()
	txns, err := prov.Transactions(ctx, link, a.UpstreamAccount.ID)
	if err != nil {
		return Counts{}, err
	}
	return s.store.SaveTransactions(ctx, a, txns, fetchedAt, now)
}

// upstream returns the link and the adapter to read c's data with.
func (s *Service) upstream(ctx context.Context, c Consent) (Link, Provider, error) {
	if c.ConnectionID == "" {
		return Link{}, nil, &ProviderError{Reason: ReasonConsentNotAuthorised, Err: errors.New("the consent has no connection")}
	}
	link, err := s.connections.Link(ctx, c.ClientID, c.ConnectionID)
	if err != nil {
		return Link{}, nil, fmt.Errorf("read connection %s: %w", c.ConnectionID, err)
	}
	if !link.Succeeded {
		reason := link.FailureReason
		if reason == "" {
			reason = "CONNECTION_NOT_READY"
		}
		return Link{}, nil, &ProviderError{Reason: reason, Err: fmt.Errorf("connection %s is not linked", c.ConnectionID)}
	}
	prov, ok := s.providers[link.Provider]
	if !ok {
		return Link{}, nil, &ProviderError{Reason: ReasonNoProvider, Err: fmt.Errorf("no adapter for provider %q", link.Provider)}
	}
	link.ClientID, link.ConsentID = c.ClientID, c.ID
	if _, ok := prov.(EventSink); ok {
		docs, err := s.store.Documents(ctx, c.ClientID, c.ID)
		if err != nil {
			return Link{}, nil, fmt.Errorf("read pushed documents: %w", err)
		}
		for kind, d := range docs {
			if d.Body, err = s.box.Open(d.Body, []byte("document:"+c.ID+":"+kind)); err != nil {
				return Link{}, nil, fmt.Errorf("open pushed document %s: %w", kind, err)
			}
			docs[kind] = d
		}
		link.Documents = docs
	}
	return link, prov, nil
}

// HandleUpstreamEvent keeps the documents an upstream pushed by webhook (a provider with an
// EventSink) and refreshes each consent they belong to, so the data reaches its tables. A
// document for a consent the client does not have, or no longer AUTHORISED, is dropped.
func (s *Service) HandleUpstreamEvent(ctx context.Context, p caller.Principal, provider, eventType string, body []byte) error {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return ErrPermissionDenied
	}
	sink, ok := s.providers[provider].(EventSink)
	if !ok {
		return nil
	}
	docs, err := sink.Documents(ctx, eventType, body)
	if err != nil {
		return apierr.Invalid("body", "is not a "+provider+" webhook this service can read")
	}
	now := s.clock()
	for _, d := range docs {
		c, err := s.consents.Get(ctx, d.ClientID, d.ConsentID)
		if errors.Is(err, ErrConsentNotFound) {
			s.log.WarnContext(ctx, "pushed document for an unknown consent dropped", "provider", provider, "consent_id", d.ConsentID)
			continue
		}
		if err != nil {
			return err
		}
		if c.Status != ConsentAuthorised {
			continue
		}
		if err := s.store.EnsureConsent(ctx, c, now); err != nil {
			return err
		}
		err = s.store.SaveDocument(ctx, c, d.Kind, s.box.Seal(d.Body, []byte("document:"+c.ID+":"+d.Kind)), now)
		if errors.Is(err, ErrConsentEnded) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keep pushed document: %w", err)
		}
		if err := s.store.EnqueueRefresh(ctx, c.ClientID, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// refreshConsent pulls what a consent covers, after an upstream pushed new data for it.
func (s *Service) refreshConsent(ctx context.Context, j jobs.Job) error {
	var a refreshArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.ConsentID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	c, err := s.consents.Get(ctx, a.ClientID, a.ConsentID)
	if errors.Is(err, ErrConsentNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.Status != ConsentAuthorised {
		return nil
	}
	var products []string
	for _, prod := range []string{ProductAccounts, ProductBalances, ProductTransactions, ProductIdentity} {
		if slices.Contains(c.Products, prod) {
			products = append(products, prod)
		}
	}
	if len(products) == 0 {
		return nil
	}
	_, err = s.pull(ctx, c, products)
	if err != nil && retry(j, err) {
		return err
	}
	if err != nil {
		s.log.WarnContext(ctx, "refresh after an upstream push failed", "consent_id", c.ID, "reason", reasonOf(err), "err", err)
	}
	return nil
}

type refreshArgs struct {
	ClientID  string `json:"client_id"`
	ConsentID string `json:"consent_id"`
}

// acquire takes one of the provider's slots, waiting for one when all are taken.
func (s *Service) acquire(ctx context.Context, provider string) (release func(), err error) {
	slots := s.slots[provider]
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ConsentChanged records that a consent ended, so that its data goes PurgeAfter later.
func (s *Service) ConsentChanged(ctx context.Context, p caller.Principal, clientID, consentID string, status ConsentStatus, at time.Time) error {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return ErrPermissionDenied
	}
	switch status {
	case ConsentRevoked, ConsentExpired, ConsentRejected:
	default:
		return nil // only an end matters here
	}
	// The consent service is the authority on whose consent it is: a wrong client id must not
	// end (and so block) another client's consent here.
	if _, err := s.consents.Get(ctx, clientID, consentID); err != nil {
		if errors.Is(err, ErrConsentNotFound) {
			return nil
		}
		return err
	}
	if at.IsZero() {
		at = s.clock()
	}
	return s.store.EndConsent(ctx, clientID, consentID, at, at.Add(s.cfg.PurgeAfter))
}

// ---- reports

// CreateReport asks for a report on a consent covering REPORTS.
func (s *Service) CreateReport(ctx context.Context, p caller.Principal, consentID, typ string) (Report, error) {
	if p.Kind != apiv1.Principal_PRINCIPAL_CLIENT {
		return Report{}, ErrPermissionDenied
	}
	if typ != "CASH_FLOW" {
		return Report{}, apierr.Invalid("type", "must be REPORT_TYPE_CASH_FLOW")
	}
	if _, err := s.readable(ctx, p, consentID, ProductReports); err != nil {
		return Report{}, err
	}
	r := Report{ID: ids.New("rpt"), ClientID: p.ClientID, ConsentID: consentID, Type: typ, Status: Pending, CreatedAt: s.clock()}
	if err := s.store.CreateReport(ctx, r); err != nil {
		return Report{}, fmt.Errorf("create report: %w", err)
	}
	return r, nil
}

// GetReport returns a report, while its consent is AUTHORISED.
func (s *Service) GetReport(ctx context.Context, p caller.Principal, id string) (Report, error) {
	if p.ClientID == "" {
		return Report{}, ErrPermissionDenied
	}
	r, err := s.store.GetReport(ctx, p.ClientID, id)
	if err != nil {
		return Report{}, err
	}
	if _, err := s.readable(ctx, p, r.ConsentID, ProductReports); err != nil {
		if errors.Is(err, ErrConsentNotFound) {
			return Report{}, ErrReportNotFound
		}
		return Report{}, err
	}
	return r, nil
}

// ---- background work

// Handlers are the service's job handlers.
func (s *Service) Handlers() map[string]jobs.Handler {
	return map[string]jobs.Handler{JobExtract: s.runExtraction, JobReport: s.generateReport, JobPurge: s.purge, JobRefresh: s.refreshConsent}
}

func parseArgs(j jobs.Job) (string, error) {
	var a jobArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.ID == "" {
		return "", jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	return a.ID, nil
}

// retry reports whether a job that met err should run again rather than record a failure: a
// temporary upstream failure or an error of Puente's own, while attempts remain.
func retry(j jobs.Job, err error) bool {
	if j.Attempt >= j.MaxAttempts {
		return false
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Temporary
	}
	var ae *apierr.Error
	return !errors.As(err, &ae) || ae.Kind == apierr.Internal || ae.Kind == apierr.Unavailable
}

func (s *Service) runExtraction(ctx context.Context, j jobs.Job) error {
	id, err := parseArgs(j)
	if err != nil {
		return err
	}
	e, err := s.store.GetExtraction(ctx, "", id)
	if errors.Is(err, ErrExtractionNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.Status != Pending {
		return nil // finished by an earlier run
	}
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	var r RefreshResult
	c, err := s.consents.Get(work, e.ClientID, e.ConsentID)
	if err == nil {
		if err = usable(c, e.Product); err == nil {
			r, err = s.pull(work, c, []string{e.Product})
		}
	}
	if err == nil && e.Product == ProductTransactions && !slices.ContainsFunc(r.Accounts, func(a AccountResult) bool { return a.OK }) && len(r.Accounts) > 0 {
		err = &ProviderError{Reason: r.Accounts[0].Reason, Err: errors.New("no account's transactions could be read")}
	}
	e.FinishedAt = s.clock()
	if err != nil {
		if retry(j, err) {
			return err
		}
		s.log.WarnContext(ctx, "extraction failed", "extraction_id", e.ID, "reason", reasonOf(err), "err", err)
		e.Status, e.Reason = Failed, reasonOf(err)
	} else {
		e.Status, e.Counts = Succeeded, r.Counts
		if failed := slices.IndexFunc(r.Accounts, func(a AccountResult) bool { return !a.OK }); failed >= 0 {
			e.Reason = "PARTIAL: " + r.Accounts[failed].Reason
		}
	}
	return s.store.FinishExtraction(record, e)
}

func (s *Service) generateReport(ctx context.Context, j jobs.Job) error {
	id, err := parseArgs(j)
	if err != nil {
		return err
	}
	r, err := s.store.GetReport(ctx, "", id)
	if errors.Is(err, ErrReportNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status != Pending {
		return nil
	}
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	cf, err := s.cashFlow(work, r)
	r.FinishedAt = s.clock()
	if err != nil {
		if retry(j, err) {
			return err
		}
		s.log.WarnContext(ctx, "report failed", "report_id", r.ID, "reason", reasonOf(err), "err", err)
		r.Status, r.Reason = Failed, reasonOf(err)
	} else {
		r.Status, r.CashFlow = Succeeded, &cf
	}
	return s.store.FinishReport(record, r)
}

// cashFlow computes the report from the upstream's data as it is now. It reads without
// storing: the consent covers the report, not necessarily the transactions.
func (s *Service) cashFlow(ctx context.Context, r Report) (CashFlow, error) {
	c, err := s.consents.Get(ctx, r.ClientID, r.ConsentID)
	if err != nil {
		return CashFlow{}, err
	}
	if err := usable(c, ProductReports); err != nil {
		return CashFlow{}, err
	}
	link, prov, err := s.upstream(ctx, c)
	if err != nil {
		return CashFlow{}, err
	}
	release, err := s.acquire(ctx, prov.Name())
	if err != nil {
		return CashFlow{}, err
	}
	defer release()
	accs, err := prov.Accounts(ctx, link)
	if err != nil {
		return CashFlow{}, err
	}
	data := make([]AccountData, 0, len(accs))
	for _, a := range accs {
		txns, err := prov.Transactions(ctx, link, a.ID)
		if err != nil {
			return CashFlow{}, err
		}
		data = append(data, AccountData{Account: a, Transactions: txns.Items})
	}
	return CashFlowReport(data), nil
}

// purge deletes an ended consent's data once its time has come.
func (s *Service) purge(ctx context.Context, j jobs.Job) error {
	id, err := parseArgs(j)
	if err != nil {
		return err
	}
	now := s.clock()
	notBefore, err := s.store.Purge(ctx, id, now)
	if err != nil {
		return fmt.Errorf("purge %s: %w", id, err)
	}
	if notBefore.After(now) {
		return jobs.Snooze(notBefore.Sub(now))
	}
	return nil
}
