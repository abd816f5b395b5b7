package syncs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	"puente.dev/pkg/apierr"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/ids"
	"puente.dev/pkg/jobs"
)

// MaxIntervalHours is the longest interval between a schedule's refreshes (30 days).
const MaxIntervalHours = 720

// claimBatch is how many due schedules RunDueSchedules claims per transaction.
const claimBatch = 500

// Consent statuses, as ConsentChanged receives them (the consent service's words).
const (
	ConsentAwaitingAuthorisation = "AWAITING_AUTHORISATION"
	ConsentAuthorised            = "AUTHORISED"
	ConsentRejected              = "REJECTED"
	ConsentRevoked               = "REVOKED"
	ConsentExpired               = "EXPIRED"
)

// ConsentChange is a consent's change of status, as the consent service reports it.
type ConsentChange struct {
	ClientID  string
	ConsentID string
	UserID    string
	Status    string
	ChangedAt time.Time // zero: now
}

// ConsentChanged keeps a consent's schedule in step with its status (service tokens only): an
// AUTHORISED consent gets one, a consent that reached a final status loses it for good.
// Repeating a change, or receiving changes out of order, is harmless: an existing schedule is
// kept as it is, and an ended one leaves a tombstone that a late AUTHORISED cannot bring back
// (a final status is final, whatever the timestamps say).
func (s *Service) ConsentChanged(ctx context.Context, p caller.Principal, ch ConsentChange) error {
	if p.Kind != apiv1.Principal_PRINCIPAL_SERVICE {
		return ErrPermissionDenied
	}
	switch {
	case !ids.Valid("cli", ch.ClientID):
		return apierr.Invalid("client_id", "is not a client id")
	case !ids.Valid("cns", ch.ConsentID):
		return apierr.Invalid("consent_id", "is not a consent id")
	case !ids.Valid("usr", ch.UserID):
		return apierr.Invalid("user_id", "is not a user id")
	}
	at := ch.ChangedAt.UTC().Truncate(time.Microsecond)
	if ch.ChangedAt.IsZero() {
		at = s.clock()
	}
	switch ch.Status {
	case ConsentAuthorised:
		sc := Schedule{
			ConsentID: ch.ConsentID, ClientID: ch.ClientID, UserID: ch.UserID,
			IntervalHours: int(s.interval / time.Hour), NextRunAt: firstRun(ch.ConsentID, at, s.interval),
		}
		if err := s.store.AddSchedule(ctx, sc, at); err != nil {
			return fmt.Errorf("add schedule: %w", err)
		}
	case ConsentRejected, ConsentRevoked, ConsentExpired:
		if err := s.store.EndSchedule(ctx, ch.ClientID, ch.ConsentID, ch.UserID, ch.Status, at); err != nil {
			return fmt.Errorf("end schedule: %w", err)
		}
	case ConsentAwaitingAuthorisation:
		// Nothing to refresh yet.
	default:
		return apierr.Invalid("status", "is not a consent status")
	}
	return nil
}

// firstRun spreads schedules' first refreshes over their interval: at + (a hash of the consent
// id mod interval), to the second. A thousand consents authorised in the same minute then
// refresh over the next day instead of all in the same minute, and each keeps its phase after.
func firstRun(consentID string, at time.Time, interval time.Duration) time.Time {
	h := fnv.New64a()
	h.Write([]byte(consentID))
	return at.Add(time.Duration(h.Sum64()%uint64(interval/time.Second)) * time.Second)
}

// GetSchedule returns the schedule of one of the caller's consents.
func (s *Service) GetSchedule(ctx context.Context, p caller.Principal, consentID string) (Schedule, error) {
	clientID, err := clientOf(p)
	if err != nil {
		return Schedule{}, err
	}
	if !ids.Valid("cns", consentID) {
		return Schedule{}, ErrScheduleNotFound
	}
	return s.store.GetSchedule(ctx, clientID, consentID)
}

// ScheduleUpdate is what UpdateSchedule changes: zero and nil fields stay as they are.
type ScheduleUpdate struct {
	IntervalHours int
	Paused        *bool
}

// UpdateSchedule changes a schedule's interval (the next run is then an interval after the
// last run, or after now before the first) or pauses and resumes it.
func (s *Service) UpdateSchedule(ctx context.Context, p caller.Principal, consentID string, u ScheduleUpdate) (Schedule, error) {
	clientID, err := clientOf(p)
	if err != nil {
		return Schedule{}, err
	}
	if u.IntervalHours != 0 && (u.IntervalHours < 1 || u.IntervalHours > MaxIntervalHours) {
		return Schedule{}, apierr.Invalid("interval_hours", fmt.Sprintf("must be from 1 to %d", MaxIntervalHours))
	}
	if !ids.Valid("cns", consentID) {
		return Schedule{}, ErrScheduleNotFound
	}
	now := s.clock()
	return s.store.UpdateSchedule(ctx, clientID, consentID, func(sc *Schedule) error {
		if u.IntervalHours != 0 && u.IntervalHours != sc.IntervalHours {
			from := sc.LastRunAt
			if from.IsZero() {
				from = now
			}
			sc.IntervalHours, sc.NextRunAt = u.IntervalHours, from.Add(time.Duration(u.IntervalHours)*time.Hour)
		}
		if u.Paused != nil {
			sc.Paused = *u.Paused
		}
		return nil
	})
}

// RunDueSchedules queues a refresh for every unpaused schedule due now and moves each to its
// next run, batch by batch. Any number of processes may run it at once: each claims different
// schedules. The process calls it every minute.
func (s *Service) RunDueSchedules(ctx context.Context) error {
	now := s.clock()
	job := func(sc Schedule) Job {
		return Job{
			Kind: JobScheduleRefresh, Args: scheduleArgs{ClientID: sc.ClientID, ConsentID: sc.ConsentID},
			RunAt: now, MaxAttempts: scheduleAttempts, UniqueKey: "schedule:" + sc.ConsentID,
		}
	}
	total := 0
	for {
		n, err := s.store.ClaimDueSchedules(ctx, now, claimBatch, job)
		total += n
		if err != nil {
			return fmt.Errorf("run due schedules: %w", err)
		}
		if n < claimBatch {
			break
		}
	}
	if total > 0 {
		s.log.InfoContext(ctx, "queued scheduled refreshes", "schedules", total)
	}
	return nil
}

type scheduleArgs struct {
	ClientID  string `json:"client_id"`
	ConsentID string `json:"consent_id"`
}

// refreshSchedule refreshes a consent on its schedule and records the outcome, announcing new
// transactions. A schedule ended or paused since it was queued is skipped.
//
// Scheduled refreshes are not under the per-institution bound: a schedule does not know its
// consent's institution (ConsentChanged does not carry it), and firstRun already spreads them.
func (s *Service) refreshSchedule(ctx context.Context, j jobs.Job) error {
	var a scheduleArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.ClientID == "" || a.ConsentID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	sc, err := s.store.GetSchedule(ctx, a.ClientID, a.ConsentID)
	switch {
	case errors.Is(err, ErrScheduleNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("scheduled refresh of %s: %w", a.ConsentID, err)
	case sc.Paused:
		return nil
	}
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	r, err := s.refresher.Refresh(work, a.ClientID, a.ConsentID, nil)
	run := ScheduleRun{At: s.clock()}
	switch {
	case err != nil && transient(err) && j.Attempt < j.MaxAttempts:
		return fmt.Errorf("scheduled refresh of %s: %w", a.ConsentID, err)
	case err != nil:
		s.log.ErrorContext(ctx, "scheduled refresh failed for good", "consent_id", a.ConsentID, "err", err)
		run.Status = UserError
	default:
		run.Status, _ = outcome(accountResults(a.ConsentID, r))
	}
	if err := s.store.RecordRun(record, a.ClientID, a.ConsentID, run); err != nil {
		return fmt.Errorf("scheduled refresh of %s: record: %w", a.ConsentID, err)
	}
	return nil
}
