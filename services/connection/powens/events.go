package powens

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	api "puente.dev/pkg/upstream/powens"

	"puente.dev/services/connection"
)

// Powens' webhooks name its own user and connection ids, never anything Puente gave it, so the
// provider is a Referencer: each login's state says which Powens ids are its.
var (
	_ connection.EventRouter = (*Provider)(nil)
	_ connection.Referencer  = (*Provider)(nil)
)

// Event types whose body is only {"id": ...}: which kind of id it is, only the type says.
const (
	EventConnectionDeleted = "CONNECTION_DELETED"
	EventUserDeleted       = "USER_DELETED"
)

func userRef(id int64) string       { return "user:" + strconv.FormatInt(id, 10) }
func connectionRef(id int64) string { return "connection:" + strconv.FormatInt(id, 10) }

// Refs are the Powens user and connection of a login.
func (p *Provider) Refs(state []byte) []string {
	s, err := api.ParseSession(state)
	if err != nil {
		return nil
	}
	var refs []string
	if s.User > 0 {
		refs = append(refs, userRef(s.User))
	}
	if s.Connection > 0 {
		refs = append(refs, connectionRef(s.Connection))
	}
	return refs
}

// ConnectionsFor returns the refs a webhook names: the connection and user of CONNECTION_SYNCED
// and ACCOUNTS_FETCHED ({"user": {"id"}, "connection": {"id", ...}}), and the id of
// CONNECTION_DELETED or USER_DELETED ({"id"}) when the type says which it is. Every one of them
// is worth a poll of a login waiting on Powens: the poll reads where the connection now stands.
func (p *Provider) ConnectionsFor(_ context.Context, eventType string, body []byte) ([]string, error) {
	var b struct {
		ID   int64 `json:"id"`
		User *struct {
			ID int64 `json:"id"`
		} `json:"user"`
		Connection *struct {
			ID int64 `json:"id"`
		} `json:"connection"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errors.New("powens: unreadable webhook")
	}
	var refs []string
	if b.Connection != nil && b.Connection.ID > 0 {
		refs = append(refs, connectionRef(b.Connection.ID))
	}
	if b.User != nil && b.User.ID > 0 {
		refs = append(refs, userRef(b.User.ID))
	}
	if b.ID > 0 {
		switch eventType {
		case EventConnectionDeleted:
			refs = append(refs, connectionRef(b.ID))
		case EventUserDeleted:
			refs = append(refs, userRef(b.ID))
		}
	}
	return refs, nil
}
