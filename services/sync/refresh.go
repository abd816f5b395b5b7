package syncs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
)

// ReasonNoAccounts is a consent's reason when its refresh gave neither accounts nor a reason.
const ReasonNoAccounts = "NO_ACCOUNTS"

// refreshUser refreshes one user's AUTHORISED consents and records the user's final result.
//
// The queue runs a job at least once, and a sync's user may be run twice (a crash after the
// refresh, a lease that ended): the result is recorded only while the user is PENDING, in the
// transaction that moves it on, so the user gets one result and one event whatever happens. A
// user found already final is not refreshed again.
func (s *Service) refreshUser(ctx context.Context, j jobs.Job) error {
	var a userArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.SyncID == "" || a.ClientID == "" || !ids.Valid("usr", a.UserID) {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	u, err := s.store.User(ctx, a.SyncID, a.Position)
	switch {
	case errors.Is(err, ErrSyncNotFound):
		return jobs.Cancel(fmt.Errorf("user %d of sync %s: %w", a.Position, a.SyncID, err))
	case err != nil:
		return fmt.Errorf("user %d of sync %s: %w", a.Position, a.SyncID, err)
	case u.Status != UserPending:
		return nil
	}
	u.UserID = a.UserID
	last := j.Attempt >= j.MaxAttempts
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	consents, reason, err := s.authorised(work, a.ClientID, a.UserID, last)
	if err != nil {
		return fmt.Errorf("user %d of sync %s: %w", a.Position, a.SyncID, err)
	}
	waits, wait, err := s.waitFor(work, record, a, consents, last)
	switch {
	case err != nil:
		return fmt.Errorf("user %d of sync %s: %w", a.Position, a.SyncID, err)
	case wait:
		return nil // the provider's answer (or its deadline) queues the user again
	}
	if reason == "" {
		if u.Accounts, err = s.refreshConsents(work, a.ClientID, consents, waits, last); err != nil {
			return fmt.Errorf("user %d of sync %s: %w", a.Position, a.SyncID, err)
		}
		u.Status, u.Reason = outcome(u.Accounts)
	} else {
		u.Status, u.Reason = UserError, reason
	}
	u.FinishedAt = s.clock()
	if _, err := s.store.Finish(record, a.ClientID, u); err != nil {
		return fmt.Errorf("user %d of sync %s: record result: %w", a.Position, a.SyncID, err)
	}
	return nil
}

// authorised returns a user's AUTHORISED consents, or the reason the user ends ERROR without
// any. It returns an error (for the job to retry) when the consent service failed in a way that
// may pass, unless this is the job's last attempt: then the user ends ERROR INTERNAL, so that
// every user ends with a result.
func (s *Service) authorised(ctx context.Context, clientID, userID string, last bool) ([]Consent, string, error) {
	consents, err := s.consents.ListAuthorised(ctx, clientID, userID)
	switch {
	case err != nil && transient(err) && !last:
		return nil, "", fmt.Errorf("list consents: %w", err)
	case err != nil:
		s.log.ErrorContext(ctx, "listing a user's consents failed for good", "user_id", userID, "err", err)
		return nil, ReasonInternal, nil
	case len(consents) == 0:
		return nil, ReasonNoAuthorisedConsent, nil
	}
	return consents, "", nil
}

// refreshConsents refreshes each consent (at once, within each institution's bound) and returns
// their account results. A consent a batch provider refreshed (its settled wait in waits) is
// read as the provider left it, or, when the provider did not refresh it, ends with the wait's
// reason. It returns an error (for the job to retry) when a service failed in a way that may
// pass, unless this is the job's last attempt: then what failed is recorded as INTERNAL.
func (s *Service) refreshConsents(ctx context.Context, clientID string, consents []Consent, waits map[string]Wait, last bool) ([]AccountResult, error) {
	results := make([][]AccountResult, len(consents))
	errs := make([]error, len(consents))
	var wg sync.WaitGroup
	for i, c := range consents {
		var failed []string
		if w, ok := waits[c.ID]; ok {
			var result *AccountResult
			if failed, result = settled(w); result != nil {
				results[i] = []AccountResult{*result}
				continue
			}
		}
		wg.Go(func() { results[i], errs[i] = s.refreshConsent(ctx, clientID, c, failed, last) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Concat(results...), nil
}

// refreshConsent refreshes one consent, holding one of its institution's slots meanwhile.
func (s *Service) refreshConsent(ctx context.Context, clientID string, c Consent, upstreamFailed []string, last bool) ([]AccountResult, error) {
	release, err := s.limiter.acquire(ctx, c.InstitutionID)
	if err != nil {
		return nil, fmt.Errorf("wait for institution %s: %w", c.InstitutionID, err)
	}
	r, err := s.refresher.Refresh(ctx, clientID, c.ID, upstreamFailed)
	release()
	switch {
	case err != nil && transient(err) && !last:
		return nil, fmt.Errorf("refresh consent %s: %w", c.ID, err)
	case err != nil:
		s.log.ErrorContext(ctx, "refreshing a consent failed for good", "consent_id", c.ID, "err", err)
		return []AccountResult{{ConsentID: c.ID, Status: AccountError, Reason: ReasonInternal}}, nil
	}
	return accountResults(c.ID, r), nil
}

// accountResults are a refresh's results: one per account, or one for the consent when nothing
// could be refreshed.
func accountResults(consentID string, r Refresh) []AccountResult {
	if len(r.Accounts) == 0 {
		reason := r.Reason
		if reason == "" {
			reason = ReasonNoAccounts
		}
		return []AccountResult{{ConsentID: consentID, Status: AccountError, Reason: reason}}
	}
	out := make([]AccountResult, 0, len(r.Accounts))
	for _, a := range r.Accounts {
		res := AccountResult{AccountID: a.AccountID, ConsentID: consentID, Status: a.Status, Reason: a.Reason}
		if res.Status != AccountSuccess && res.Status != AccountError {
			res.Status, res.Reason = AccountError, ReasonInternal // an answer Puente cannot read
		}
		out = append(out, res)
	}
	return out
}

// outcome is a user's status from its account results: SUCCESS when every one succeeded (and
// there is one), PARTIAL when some did, ERROR otherwise, with the failures' reasons.
func outcome(results []AccountResult) (UserStatus, string) {
	ok, failed := 0, 0
	var reasons []string
	for _, r := range results {
		if r.Status == AccountSuccess {
			ok++
			continue
		}
		failed++
		if r.Reason != "" && !slices.Contains(reasons, r.Reason) {
			reasons = append(reasons, r.Reason)
		}
	}
	switch {
	case ok > 0 && failed == 0:
		return UserSuccess, ""
	case ok > 0:
		return UserPartial, ""
	case len(reasons) == 0:
		return UserError, ReasonInternal
	}
	return UserError, strings.Join(reasons, ",")
}

// Sweep ends, ERROR INTERNAL, the users that nothing will finish any more: their job failed for
// good (a process died during its last attempt, whose lease then ended) or the fan-out's did.
// Without it their sync would stay RUNNING for ever; with it every user gets its one result
// and event. The process runs it every minute.
func (s *Service) Sweep(ctx context.Context) error {
	for {
		users, clients, err := s.store.Stranded(ctx, FanoutChunk)
		if err != nil {
			return fmt.Errorf("find stranded users: %w", err)
		}
		for i, u := range users {
			u.Status, u.Reason, u.FinishedAt = UserError, ReasonInternal, s.clock()
			if _, err := s.store.Finish(ctx, clients[i], u); err != nil {
				return fmt.Errorf("end stranded user %d of sync %s: %w", u.Position, u.SyncID, err)
			}
			s.log.WarnContext(ctx, "a sync's user was stranded: ended ERROR INTERNAL", "sync_id", u.SyncID, "position", u.Position)
		}
		if len(users) < FanoutChunk {
			return nil
		}
	}
}
