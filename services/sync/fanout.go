package syncs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"puente.dev/pkg/jobs"
)

// Job kinds.
const (
	// JobFanout resolves a sync's users and queues a JobUser for each one found.
	// Args: {"sync_id", "client_id"}.
	JobFanout = "sync.fanout"
	// JobUser refreshes one user of a sync and records the user's result.
	// Args: {"sync_id", "client_id", "position", "user_id"}.
	JobUser = "sync.user"
	// JobScheduleRefresh refreshes a consent on its schedule. Args: {"client_id", "consent_id"}.
	JobScheduleRefresh = "schedule.refresh"
)

// Attempts per job. Backoff doubles from 1s, so a user is retried for about 8 minutes and the
// fan-out for about half an hour before they give up and record ERROR INTERNAL: a client waits
// for its sync to complete, so nothing is retried for the queue's default day.
const (
	fanoutAttempts   = 12
	userAttempts     = 10
	scheduleAttempts = 10
)

// FanoutChunk is how many users the fan-out resolves per call to the directory and per
// transaction.
const FanoutChunk = 500

// Handlers are the service's job handlers.
func (s *Service) Handlers() map[string]jobs.Handler {
	return map[string]jobs.Handler{
		JobFanout:          s.fanout,
		JobUser:            s.refreshUser,
		JobScheduleRefresh: s.refreshSchedule,
		JobUpstream:        s.sendBatches,
	}
}

type fanoutArgs struct {
	SyncID   string `json:"sync_id"`
	ClientID string `json:"client_id"`
}

type userArgs struct {
	SyncID   string `json:"sync_id"`
	ClientID string `json:"client_id"`
	Position int    `json:"position"`
	UserID   string `json:"user_id"`
}

// userJobKey keeps one pending job per user of a sync.
func userJobKey(syncID string, position int) string {
	return "user:" + syncID + ":" + strconv.Itoa(position)
}

// fanout resolves a sync's users chunk by chunk, in position order. Each chunk is recorded in
// one transaction (found users get their id and their job, the others their NOT_FOUND result
// and event) and marked resolved, so a fan-out that crashed or failed half-way resumes with the
// first chunk it had not recorded, and a chunk recorded twice (two runs racing past a lease)
// changes nothing the second time.
func (s *Service) fanout(ctx context.Context, j jobs.Job) error {
	var a fanoutArgs
	if err := json.Unmarshal(j.Args, &a); err != nil || a.SyncID == "" || a.ClientID == "" {
		return jobs.Cancel(fmt.Errorf("bad args %s: %v", j.Args, err))
	}
	last := j.Attempt >= j.MaxAttempts
	work, record, cancel := jobs.Split(ctx)
	defer cancel()
	after := -1
	for {
		chunk, err := s.store.Unresolved(record, a.SyncID, after, FanoutChunk)
		if err != nil {
			return fmt.Errorf("fanout %s: %w", a.SyncID, err)
		}
		if len(chunk) == 0 {
			return nil
		}
		after = chunk[len(chunk)-1].Position
		found, final, err := s.resolve(work, a, chunk)
		if err != nil {
			if !last {
				return fmt.Errorf("fanout %s: %w", a.SyncID, err)
			}
			// The directory kept failing: end the users still unresolved, so that the sync
			// completes rather than waiting for ever.
			s.log.ErrorContext(ctx, "sync fan-out failed for good", "sync_id", a.SyncID, "err", err)
			found, final = nil, failAll(chunk, ReasonInternal, s.clock())
		}
		if err := s.store.Resolve(record, a.ClientID, a.SyncID, found, final); err != nil {
			return fmt.Errorf("fanout %s: record chunk: %w", a.SyncID, err)
		}
	}
}

// resolve asks the directory about one chunk and sorts its users into found ones (each with
// its job) and NOT_FOUND ones.
func (s *Service) resolve(ctx context.Context, a fanoutArgs, chunk []UserResult) ([]Resolved, []UserResult, error) {
	var byID, byRef []string
	for _, u := range chunk {
		if u.Ref.UserID != "" {
			byID = append(byID, u.Ref.UserID)
		} else {
			byRef = append(byRef, u.Ref.ExternalRef)
		}
	}
	users, err := s.directory.Resolve(ctx, a.ClientID, byID, byRef)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve users: %w", err)
	}
	ids := make(map[string]bool, len(users))
	refs := make(map[string]string, len(users))
	for _, u := range users {
		ids[u.ID] = true
		if u.ExternalRef != "" {
			refs[u.ExternalRef] = u.ID
		}
	}
	now := s.clock()
	var found []Resolved
	var final []UserResult
	for _, u := range chunk {
		userID := refs[u.Ref.ExternalRef]
		if u.Ref.UserID != "" && ids[u.Ref.UserID] {
			userID = u.Ref.UserID
		}
		if userID == "" {
			u.Status, u.FinishedAt = UserNotFound, now
			final = append(final, u)
			continue
		}
		found = append(found, Resolved{Position: u.Position, UserID: userID, Job: Job{
			Kind: JobUser, RunAt: now, MaxAttempts: userAttempts, UniqueKey: userJobKey(a.SyncID, u.Position),
			Args: userArgs{SyncID: a.SyncID, ClientID: a.ClientID, Position: u.Position, UserID: userID},
		}})
	}
	return found, final, nil
}

// failAll ends every user of chunk ERROR with reason.
func failAll(chunk []UserResult, reason string, now time.Time) []UserResult {
	out := make([]UserResult, len(chunk))
	for i, u := range chunk {
		u.Status, u.Reason, u.FinishedAt = UserError, reason, now
		out[i] = u
	}
	return out
}
