package syncs

// Event types. Sync events have the sync id as flow id; the schedule's event, the consent id.
// No event carries a secret; external_ref is the client's own id for its user, sent back only in
// the client's own events.
const (
	EventUserFinished = "sync.user.finished"
	EventUserNotFound = "sync.user.not_found"
	EventCompleted    = "sync.completed"
)

// AccountData is one account result in "sync.user.finished". account_id is empty for a
// consent that could not be refreshed at all.
type AccountData struct {
	AccountID string `json:"account_id"`
	ConsentID string `json:"consent_id"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
}

// UserFinishedData is the data of "sync.user.finished".
type UserFinishedData struct {
	SyncID      string        `json:"sync_id"`
	UserID      string        `json:"user_id"`
	ExternalRef string        `json:"external_ref,omitempty"` // when the user was sent by external_ref
	Status      string        `json:"status"`
	Reason      string        `json:"reason,omitempty"`
	Accounts    []AccountData `json:"accounts"`
}

// UserNotFoundData is the data of "sync.user.not_found": the reference as it was sent.
type UserNotFoundData struct {
	SyncID      string `json:"sync_id"`
	UserID      string `json:"user_id,omitempty"`
	ExternalRef string `json:"external_ref,omitempty"`
}

// CompletedData is the data of "sync.completed".
type CompletedData struct {
	SyncID    string `json:"sync_id"`
	Total     int    `json:"total_users"`
	Succeeded int    `json:"succeeded_users"`
	Partial   int    `json:"partial_users"`
	Failed    int    `json:"failed_users"`
	NotFound  int    `json:"not_found_users"`
}

// UserEvent is the final event of a user's result: its type and data.
func UserEvent(r UserResult) (string, any) {
	if r.Status == UserNotFound {
		return EventUserNotFound, UserNotFoundData{SyncID: r.SyncID, UserID: r.Ref.UserID, ExternalRef: r.Ref.ExternalRef}
	}
	d := UserFinishedData{
		SyncID: r.SyncID, UserID: r.UserID, ExternalRef: r.Ref.ExternalRef, Status: string(r.Status), Reason: r.Reason,
		Accounts: make([]AccountData, 0, len(r.Accounts)),
	}
	if d.UserID == "" {
		d.UserID = r.Ref.UserID // a user the fan-out could not resolve: the id as sent
	}
	for _, a := range r.Accounts {
		d.Accounts = append(d.Accounts, AccountData{AccountID: a.AccountID, ConsentID: a.ConsentID, Status: string(a.Status), Reason: a.Reason})
	}
	return EventUserFinished, d
}

// CompletedEvent is the data of a completed sync's event.
func CompletedEvent(s Sync) CompletedData {
	return CompletedData{SyncID: s.ID, Total: s.Total, Succeeded: s.Succeeded, Partial: s.Partial, Failed: s.Failed, NotFound: s.NotFound}
}
