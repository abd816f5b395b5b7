package guiabolso

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"puente.dev/pkg/upstream"
)

// envelope is an event of Guiabolso's events protocol, request or response.
type envelope struct {
	Name     string          `json:"name"`
	Version  int             `json:"version"`
	ID       string          `json:"id"`
	FlowID   string          `json:"flowId"`
	Payload  json.RawMessage `json:"payload"`
	Identity map[string]any  `json:"identity"`
	Auth     map[string]any  `json:"auth"`
	Metadata map[string]any  `json:"metadata"`
}

// errorPayload is an error event's payload.
type errorPayload struct {
	Code       string         `json:"code"`
	Parameters map[string]any `json:"parameters"`
}

// EventError is an error event Guiabolso answered: "<name>:<Type>" with its payload's code.
type EventError struct {
	Event string // the request's name
	Type  string // camelCase: unauthorized, expired, badRequest, ...
	Code  string // the payload's code, when it has one
}

func (e *EventError) Error() string {
	s := e.Event + ":" + e.Type
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s
}

// AsEventError returns err's *EventError, if it has one.
func AsEventError(err error) (*EventError, bool) {
	var e *EventError
	ok := errors.As(err, &e)
	return e, ok
}

// Error types of the events protocol (EventErrorType.kt), camelCase.
const (
	TypeError            = "error"
	TypeBadRequest       = "badRequest"
	TypeBadProtocol      = "badProtocol"
	TypeUnprocessable    = "unprocessable"
	TypeGone             = "gone"
	TypeEventNotFound    = "eventNotFound"
	TypeUnauthorized     = "unauthorized"
	TypeNotFound         = "notFound"
	TypeForbidden        = "forbidden"
	TypeUserDenied       = "userDenied"
	TypeResourceDenied   = "resourceDenied"
	TypeExpired          = "expired"
	TypeFailedDependency = "failedDependency"
)

// normalizeType turns a suffix in either spelling (bad_request, badRequest) into camelCase.
func normalizeType(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	parts := strings.Split(strings.ToLower(s), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// call is one event.
type call struct {
	route       string
	name        string
	payload     any
	accessToken string // user route only
	safe        bool
}

// do sends an event and decodes its ":response" payload into out. Any other answer is an error:
// an error event as an *upstream.Error wrapping an *EventError, whatever the HTTP status.
func (c *Client) do(ctx context.Context, k call, out any) error {
	payload, err := json.Marshal(k.payload)
	if err != nil {
		return fmt.Errorf("guiabolso %s: encode payload: %w", k.name, err)
	}
	auth := map[string]any{"clientSecret": c.cfg.ClientSecret}
	if k.accessToken != "" {
		auth["accessToken"] = k.accessToken
	}
	req := envelope{
		Name: k.name, Version: 1, ID: newUUID(), FlowID: newUUID(), Payload: payload,
		Identity: map[string]any{"clientId": c.cfg.ClientID}, Auth: auth, Metadata: map[string]any{},
	}
	op := "POST " + k.route + " " + k.name
	resp, err := c.api.Do(ctx, upstream.Request{Method: "POST", Path: k.route, Op: op, JSON: req, Safe: k.safe}, nil)
	var body []byte
	status := 0
	if err != nil {
		ue, ok := upstream.AsError(err)
		if !ok || len(ue.Body) == 0 {
			return err
		}
		// Unknown 1: an error event may come with a 4xx/5xx; the event's name is the answer.
		var ev envelope
		if json.Unmarshal(ue.Body, &ev) != nil || !strings.HasPrefix(ev.Name, k.name+":") {
			return err
		}
		body, status = ue.Body, ue.Status
	} else {
		body, status = resp.Body, resp.Status
	}
	fail := func(kind upstream.Kind, code string, cause error) error {
		return &upstream.Error{Provider: c.api.Provider(), Op: op, Kind: kind, Status: status, Code: code, Err: cause}
	}
	var ev envelope
	if err := json.Unmarshal(body, &ev); err != nil {
		return fail(upstream.BadResponse, "", errors.New("the answer is not an event"))
	}
	suffix, ok := strings.CutPrefix(ev.Name, k.name+":")
	if !ok {
		return fail(upstream.BadResponse, "", fmt.Errorf("the answer is event %q", ev.Name))
	}
	if suffix == "response" {
		if out == nil {
			return nil
		}
		if len(ev.Payload) == 0 || json.Unmarshal(ev.Payload, out) != nil {
			return fail(upstream.BadResponse, "", errors.New("the response payload does not fit"))
		}
		return nil
	}
	if suffix == "redirect" {
		return fail(upstream.BadResponse, "", errors.New("an unexpected redirect event"))
	}
	var ep errorPayload
	_ = json.Unmarshal(ev.Payload, &ep) // an error without a payload has no code
	ee := &EventError{Event: k.name, Type: normalizeType(suffix), Code: ep.Code}
	code := ee.Code
	if code == "" {
		code = ee.Type
	}
	return fail(KindOf(ee.Type), code, ee)
}
