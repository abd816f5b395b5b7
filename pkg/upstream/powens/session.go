package powens

import (
	"encoding/json"
	"errors"
	"time"
)

// Session is what Puente keeps (sealed) of a Powens login: the user made for it, its token, the
// connection, and while logging in where the login stands. Each Puente connection gets its own
// Powens user, so that deleting one deletes everything Powens holds for it.
type Session struct {
	User       int64  `json:"id_user"`
	Token      string `json:"token,omitempty"` // permanent, once the login succeeded
	Connection int64  `json:"id_connection,omitempty"`

	// While logging in.
	Temporary       string    `json:"temp_token,omitempty"`
	TemporaryExpiry time.Time `json:"temp_expiry,omitzero"`
	Pending         []string  `json:"pending_sources,omitempty"` // sources still to add, in order
	Phase           string    `json:"phase,omitempty"`
	Offered         []int64   `json:"offered,omitempty"` // accounts the activation challenge offers
	Polls           int       `json:"polls,omitempty"`
}

// Phases of a login in progress.
const (
	PhaseMFA        = "mfa"        // additionalInformationNeeded: the connection's fields are asked
	PhaseDecoupled  = "decoupled"  // the user validates in the bank's app
	PhaseValidating = "validating" // Powens is working
	PhaseAccounts   = "accounts"   // the user chooses the accounts to share
)

// ParseSession reads a sealed session back.
func ParseSession(raw []byte) (Session, error) {
	var s Session
	if len(raw) == 0 {
		return s, errors.New("powens: no session state")
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, errors.New("powens: unreadable session state")
	}
	if s.User == 0 {
		return s, errors.New("powens: session state without a user")
	}
	return s, nil
}

// Encode is the session as Puente keeps it.
func (s Session) Encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// UserToken is the token to act with: the permanent one once there is one.
func (s Session) UserToken() string {
	if s.Token != "" {
		return s.Token
	}
	return s.Temporary
}
