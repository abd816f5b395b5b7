package scaleout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// api calls the REST API through the balancer as one client (tenant) with its access token.
type api struct {
	lb    *balancer
	token string
}

// call sends a JSON request and decodes a 2xx answer into out; any other answer is an error.
// A POST carries its request_id as an Idempotency-Key too, which tells Go's HTTP transport that
// the request may be sent again on a connection the gateway closed as idle at the same instant
// (the body's request_id makes the repeat harmless).
func (a *api) call(ctx context.Context, method, path string, body map[string]any, out any) error {
	h := http.Header{}
	if a.token != "" {
		h.Set("Authorization", "Bearer "+a.token)
	}
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
		h.Set("Content-Type", "application/json")
		if id, ok := body["request_id"].(string); ok {
			h.Set("Idempotency-Key", id)
		}
	}
	resp, got, err := a.lb.do(ctx, method, path, h, raw)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, got)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			return fmt.Errorf("%s %s: decoding %s: %w", method, path, got, err)
		}
	}
	return nil
}

type idStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// await polls GET path until the status read by status is want, failing on any status in
// final other than want.
func (a *api) await(ctx context.Context, path, want string, final []string, status func(raw map[string]json.RawMessage) string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		var got map[string]json.RawMessage
		if err := a.call(ctx, http.MethodGet, path, nil, &got); err != nil {
			return err
		}
		last = status(got)
		if last == want {
			return nil
		}
		for _, f := range final {
			if last == f {
				return fmt.Errorf("%s ended %s, wanted %s", path, last, want)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still %s, wanted %s: %w", path, last, want, ctx.Err())
		case <-tick.C:
		}
	}
}

// statusOf reads {"<key>": {"status": ...}}.
func statusOf(key string) func(map[string]json.RawMessage) string {
	return func(raw map[string]json.RawMessage) string {
		var v idStatus
		_ = json.Unmarshal(raw[key], &v)
		return v.Status
	}
}

// linkFlow is one user's way from sign-up to data: a consent authorised through a Sandbox
// login, then an extraction.
type linkFlow struct {
	user, consent, connection, extraction string
}

// workload is what one round of load created, to be checked.
type workload struct {
	flows    []linkFlow
	expiring []string // consents created to expire within seconds
	sync     string
}

// load runs a round of users users and expiring short-lived consents, eight at a time, then a
// sync of the users; started counts users whose consent exists (the round is under way).
func (a *api) load(ctx context.Context, round, institution string, users, expiring int, started *atomic.Int32) (workload, error) {
	w := workload{flows: make([]linkFlow, users), expiring: make([]string, expiring)}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for i := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f, err := a.link(ctx, fmt.Sprintf("%s-%d", round, i), institution, started)
			if err != nil {
				fail(fmt.Errorf("user %d: %w", i, err))
			}
			w.flows[i] = f
		})
	}
	for i := range expiring {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id, err := a.expiringConsent(ctx, fmt.Sprintf("%s-exp-%d", round, i), institution)
			if err != nil {
				fail(fmt.Errorf("expiring consent %d: %w", i, err))
			}
			w.expiring[i] = id
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return w, errs[0]
	}
	id, err := a.syncAll(ctx, round, w.flows)
	w.sync = id
	return w, err
}

func (a *api) newUser(ctx context.Context, ref string) (string, error) {
	var u struct{ User idStatus }
	err := a.call(ctx, http.MethodPost, "/v1/users", map[string]any{"external_ref": ref, "kind": "USER_KIND_NATURAL", "request_id": ref + "/user"}, &u)
	return u.User.ID, err
}

func (a *api) link(ctx context.Context, ref, institution string, started *atomic.Int32) (linkFlow, error) {
	var f linkFlow
	var err error
	if f.user, err = a.newUser(ctx, ref); err != nil {
		return f, err
	}
	var cns struct{ Consent idStatus }
	if err := a.call(ctx, http.MethodPost, "/v1/consents", map[string]any{
		"user_id": f.user, "institution_id": institution, "products": []string{"ACCOUNTS", "TRANSACTIONS"}, "request_id": ref + "/consent",
	}, &cns); err != nil {
		return f, err
	}
	f.consent = cns.Consent.ID
	started.Add(1)
	var con struct{ Connection idStatus }
	if err := a.call(ctx, http.MethodPost, "/v1/connections", map[string]any{
		"user_id": f.user, "institution_id": institution, "consent_id": f.consent, "request_id": ref + "/connection",
		"credentials": map[string]string{"username": "user_good", "password": "pass_good"},
	}, &con); err != nil {
		return f, err
	}
	f.connection = con.Connection.ID
	if err := a.await(ctx, "/v1/connections/"+f.connection, "CONNECTION_STATUS_SUCCEEDED", []string{"CONNECTION_STATUS_FAILED"}, statusOf("connection")); err != nil {
		return f, err
	}
	if err := a.await(ctx, "/v1/consents/"+f.consent, "CONSENT_STATUS_AUTHORISED", []string{"CONSENT_STATUS_REJECTED", "CONSENT_STATUS_REVOKED", "CONSENT_STATUS_EXPIRED"}, statusOf("consent")); err != nil {
		return f, err
	}
	var x struct{ Extraction idStatus }
	if err := a.call(ctx, http.MethodPost, "/v1/extractions", map[string]any{"consent_id": f.consent, "product": "TRANSACTIONS", "request_id": ref + "/extraction"}, &x); err != nil {
		return f, err
	}
	f.extraction = x.Extraction.ID
	err = a.await(ctx, "/v1/extractions/"+f.extraction, "EXTRACTION_STATUS_SUCCEEDED", []string{"EXTRACTION_STATUS_FAILED"}, statusOf("extraction"))
	return f, err
}

// expiringConsent creates a consent that ends two seconds from now and waits for the consent
// service's expiry job to end it.
func (a *api) expiringConsent(ctx context.Context, ref, institution string) (string, error) {
	user, err := a.newUser(ctx, ref)
	if err != nil {
		return "", err
	}
	var cns struct{ Consent idStatus }
	if err := a.call(ctx, http.MethodPost, "/v1/consents", map[string]any{
		"user_id": user, "institution_id": institution, "products": []string{"ACCOUNTS"}, "request_id": ref + "/consent",
		"expire_time": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano),
	}, &cns); err != nil {
		return "", err
	}
	return cns.Consent.ID, a.await(ctx, "/v1/consents/"+cns.Consent.ID, "CONSENT_STATUS_EXPIRED", nil, statusOf("consent"))
}

// syncAll refreshes every user of flows in one sync and waits for it to complete with each
// user succeeded.
func (a *api) syncAll(ctx context.Context, round string, flows []linkFlow) (string, error) {
	users := make([]map[string]string, len(flows))
	for i, f := range flows {
		users[i] = map[string]string{"user_id": f.user}
	}
	var s struct{ Sync idStatus }
	if err := a.call(ctx, http.MethodPost, "/v1/syncs", map[string]any{"users": users, "request_id": round + "/sync"}, &s); err != nil {
		return "", err
	}
	if err := a.await(ctx, "/v1/syncs/"+s.Sync.ID, "SYNC_STATUS_COMPLETED", nil, statusOf("sync")); err != nil {
		return s.Sync.ID, err
	}
	var got struct {
		Sync struct {
			SucceededUsers int `json:"succeeded_users"`
		}
	}
	if err := a.call(ctx, http.MethodGet, "/v1/syncs/"+s.Sync.ID, nil, &got); err != nil {
		return s.Sync.ID, err
	}
	if got.Sync.SucceededUsers != len(flows) {
		return s.Sync.ID, fmt.Errorf("sync %s: %d of %d users succeeded", s.Sync.ID, got.Sync.SucceededUsers, len(flows))
	}
	return s.Sync.ID, nil
}

// setupTenant creates a client with the admin token, gets it an access token and finds a
// Sandbox institution with a credentials login.
func setupTenant(ctx context.Context, lb *balancer, adminToken string) (*api, string, error) {
	admin := &api{lb: lb, token: adminToken}
	var created struct {
		Client idStatus
		APIKey struct {
			Secret string `json:"secret"`
		} `json:"api_key"`
	}
	if err := admin.call(ctx, http.MethodPost, "/v1/admin/clients", map[string]any{"name": "scaleout", "request_id": "scaleout-client"}, &created); err != nil {
		return nil, "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	anon := &api{lb: lb}
	if err := anon.call(ctx, http.MethodPost, "/v1/oauth/token", map[string]any{
		"grant_type": "client_credentials", "client_id": created.Client.ID, "client_secret": created.APIKey.Secret,
	}, &tok); err != nil {
		return nil, "", err
	}
	a := &api{lb: lb, token: tok.AccessToken}
	var list struct {
		Institutions []struct {
			ID               string `json:"id"`
			AuthMechanism    string `json:"auth_mechanism"`
			Health           string `json:"health"`
			CredentialFields []any  `json:"credential_fields"`
		}
	}
	if err := a.call(ctx, http.MethodGet, "/v1/institutions?country=CL", nil, &list); err != nil {
		return nil, "", err
	}
	for _, in := range list.Institutions {
		if in.AuthMechanism == "AUTH_MECHANISM_CREDENTIALS" && in.Health == "INSTITUTION_HEALTH_OPERATIONAL" && len(in.CredentialFields) == 2 {
			return a, in.ID, nil
		}
	}
	return nil, "", fmt.Errorf("no Sandbox credentials institution in CL among %d", len(list.Institutions))
}
