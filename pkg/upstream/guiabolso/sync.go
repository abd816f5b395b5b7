package guiabolso

import (
	"encoding/json"
	"errors"
	"fmt"
)

// SyncEvent is a wallet-monitoring webhook: one user's synchronization finished (Accounts, each
// SUCCESS or ERROR) or the user was not found (NotFound).
type SyncEvent struct {
	Name              string // EventSyncFinished or EventUserNotFound
	ID                string // the event's id
	SynchronizationID string
	ProducerTag       string
	UserTrackingID    string
	NotFound          bool
	Accounts          []SyncAccount
}

// SyncAccount is one account's result in a finished synchronization.
type SyncAccount struct {
	AccountID int64
	BacenCode string
	Status    string // SyncSuccess or SyncError
}

// OK reports whether the account synchronized.
func (a SyncAccount) OK() bool { return a.Status == SyncSuccess }

// ErrNotSyncEvent is a body that is not one of the two wallet-monitoring events.
var ErrNotSyncEvent = errors.New("guiabolso: not a wallet-monitoring event")

// ParseSyncEvent reads a verified wallet-monitoring webhook body.
func ParseSyncEvent(body []byte) (SyncEvent, error) {
	var ev struct {
		Name    string `json:"name"`
		ID      string `json:"id"`
		Payload *struct {
			SynchronizationID string `json:"synchronizationId"`
			ProducerTag       string `json:"producerTag"`
			UserTrackingID    string `json:"userTrackingId"`
			Accounts          []struct {
				AccountID json.Number `json:"accountId"`
				BacenCode string      `json:"bacenCode"`
				Result    struct {
					Status string `json:"status"`
				} `json:"result"`
			} `json:"accounts"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return SyncEvent{}, fmt.Errorf("guiabolso: decode webhook: %w", err)
	}
	if ev.Name != EventSyncFinished && ev.Name != EventUserNotFound {
		return SyncEvent{}, fmt.Errorf("%w: %q", ErrNotSyncEvent, ev.Name)
	}
	if ev.Payload == nil || ev.Payload.UserTrackingID == "" {
		return SyncEvent{}, errors.New("guiabolso: webhook without a userTrackingId")
	}
	p := ev.Payload
	out := SyncEvent{
		Name: ev.Name, ID: ev.ID, SynchronizationID: p.SynchronizationID, ProducerTag: p.ProducerTag,
		UserTrackingID: p.UserTrackingID, NotFound: ev.Name == EventUserNotFound,
	}
	if out.ProducerTag == "" {
		out.ProducerTag = DefaultProducerTag
	}
	if out.NotFound {
		return out, nil
	}
	for _, a := range p.Accounts {
		id, err := a.AccountID.Int64()
		if err != nil {
			return SyncEvent{}, errors.New("guiabolso: webhook account without a numeric accountId")
		}
		out.Accounts = append(out.Accounts, SyncAccount{AccountID: id, BacenCode: a.BacenCode, Status: normalizeSyncStatus(a.Result.Status)})
	}
	return out, nil
}
