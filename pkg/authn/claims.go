package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Token scopes (the "scp" claim).
const (
	ScopeClient = "client"
	ScopeTask   = "task"
	ScopeWidget = "widget"
)

// maxNumericDate is 9999-12-31T23:59:59Z. NumericDates outside
// [0, maxNumericDate] are rejected as malformed; this also keeps every value
// exactly representable as a float64 and far from int64 overflow.
const maxNumericDate = 253402300799

// Claims are the JWT claims used by Puente.
//
// JSON encoding (MarshalJSON / UnmarshalJSON) uses the registered claim names
// iss, sub, aud, exp, nbf, iat, jti and the private names scp, usr, cns, lnk,
// prd, ctr, env, org. Empty fields are omitted. Times are NumericDates (seconds since the
// epoch; sub-second precision is dropped when signing, accepted when parsing).
// Audience is encoded as a single string when it has exactly one element.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub: the client id (cli_...)
	Audience  []string  // aud
	ExpiresAt time.Time // exp
	NotBefore time.Time // nbf
	IssuedAt  time.Time // iat
	ID        string    // jti
	Scope     string    // scp: ScopeClient | ScopeTask | ScopeWidget
	UserID    string    // usr (optional)
	ConsentID string    // cns (optional)
	LinkID    string    // lnk (optional)
	Products  []string  // prd (optional)
	Country   string    // ctr (optional): the widget's country
	// Environment is the client's environment: EnvSandbox or EnvProduction (env).
	Environment string
	// Origins are the web origins the client registered (org, optional; widget sessions).
	Origins []string
}

// Environments (the "env" claim).
const (
	EnvSandbox    = "sandbox"
	EnvProduction = "production"
)

type claimsWire struct {
	Issuer    string   `json:"iss,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  any      `json:"aud,omitempty"`
	ExpiresAt *int64   `json:"exp,omitempty"`
	NotBefore *int64   `json:"nbf,omitempty"`
	IssuedAt  *int64   `json:"iat,omitempty"`
	ID        string   `json:"jti,omitempty"`
	Scope     string   `json:"scp,omitempty"`
	UserID    string   `json:"usr,omitempty"`
	ConsentID string   `json:"cns,omitempty"`
	LinkID    string   `json:"lnk,omitempty"`
	Products  []string `json:"prd,omitempty"`
	Country   string   `json:"ctr,omitempty"`
	Env       string   `json:"env,omitempty"`
	Origins   []string `json:"org,omitempty"`
}

// MarshalJSON encodes the claims as a JWT claims set. It fails on strings
// that are not valid UTF-8 (encoding/json would silently alter them) and on
// times outside 1970..9999.
func (c Claims) MarshalJSON() ([]byte, error) {
	w := claimsWire{
		Issuer: c.Issuer, Subject: c.Subject, ID: c.ID, Scope: c.Scope,
		UserID: c.UserID, ConsentID: c.ConsentID, LinkID: c.LinkID,
		Products: c.Products, Country: c.Country, Env: c.Environment, Origins: c.Origins,
	}
	strs := []string{c.Issuer, c.Subject, c.ID, c.Scope, c.UserID, c.ConsentID, c.LinkID, c.Country, c.Environment}
	strs = append(strs, c.Audience...)
	strs = append(strs, c.Products...)
	strs = append(strs, c.Origins...)
	for _, s := range strs {
		if !utf8.ValidString(s) {
			return nil, errors.New("authn: claim is not valid UTF-8")
		}
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		w.Audience = c.Audience[0]
	default:
		w.Audience = c.Audience
	}
	var err error
	if w.ExpiresAt, err = encodeDate("exp", c.ExpiresAt); err != nil {
		return nil, err
	}
	if w.NotBefore, err = encodeDate("nbf", c.NotBefore); err != nil {
		return nil, err
	}
	if w.IssuedAt, err = encodeDate("iat", c.IssuedAt); err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

func encodeDate(name string, t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	u := t.Unix()
	if u < 0 || u > maxNumericDate {
		return nil, fmt.Errorf("authn: claim %q: time %v out of range", name, t)
	}
	return &u, nil
}

// UnmarshalJSON strictly decodes a JWT claims set: the input must be a single
// JSON object of valid UTF-8 without duplicate members, and the known claims
// must have the right JSON type (null is not accepted for any of them).
// Unknown claims are ignored. aud may be a string or an array of strings;
// NumericDates may be integers or floats ("exp": 1.7e9). Errors wrap
// ErrMalformed. It does not check presence or validity; Verify does that.
func (c *Claims) UnmarshalJSON(data []byte) error {
	members, err := parseObject(data)
	if err != nil {
		return fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	var out Claims
	for _, m := range members {
		switch m.name {
		case "iss":
			out.Issuer, err = jsonString(m.value)
		case "sub":
			out.Subject, err = jsonString(m.value)
		case "aud":
			out.Audience, err = jsonAudience(m.value)
		case "exp":
			out.ExpiresAt, err = jsonNumericDate(m.value)
		case "nbf":
			out.NotBefore, err = jsonNumericDate(m.value)
		case "iat":
			out.IssuedAt, err = jsonNumericDate(m.value)
		case "jti":
			out.ID, err = jsonString(m.value)
		case "scp":
			out.Scope, err = jsonString(m.value)
		case "usr":
			out.UserID, err = jsonString(m.value)
		case "cns":
			out.ConsentID, err = jsonString(m.value)
		case "lnk":
			out.LinkID, err = jsonString(m.value)
		case "prd":
			out.Products, err = jsonStringArray(m.value)
		case "ctr":
			out.Country, err = jsonString(m.value)
		case "env":
			out.Environment, err = jsonString(m.value)
		case "org":
			out.Origins, err = jsonStringArray(m.value)
		}
		if err != nil {
			return fmt.Errorf("%w: claim %q: %v", ErrMalformed, m.name, err)
		}
	}
	*c = out
	return nil
}

type member struct {
	name  string
	value json.RawMessage
}

// parseObject decodes data as exactly one JSON object and returns its members
// in order. It rejects invalid UTF-8, duplicate member names (compared after
// unescaping, case-sensitively), and anything but whitespace after the object.
func parseObject(data []byte) ([]member, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var members []member
	seen := make(map[string]struct{})
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("not JSON: member name is not a string")
		}
		if _, dup := seen[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = struct{}{}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		members = append(members, member{name, value})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return members, nil
}

func jsonString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", errors.New("not a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func jsonStringArray(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New("not an array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, err := jsonString(e)
		if err != nil {
			return nil, fmt.Errorf("array element: %v", err)
		}
		out = append(out, s)
	}
	return out, nil
}

func jsonAudience(raw json.RawMessage) ([]string, error) {
	if len(raw) > 0 && raw[0] == '"' {
		s, err := jsonString(raw)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	return jsonStringArray(raw)
}

// jsonNumericDate parses a JSON number of seconds since the epoch. Integers
// are parsed exactly; anything else (fractions, exponents) as a float64.
func jsonNumericDate(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, errors.New("not a number")
	}
	s := string(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > maxNumericDate {
			return time.Time{}, errors.New("out of range")
		}
		return time.Unix(n, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errors.New("out of range")
	}
	sec := math.Floor(f)
	nsec := math.Round((f - sec) * 1e9)
	if nsec >= 1e9 {
		sec, nsec = sec+1, 0
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}
