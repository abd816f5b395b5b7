package signature_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"puente.dev/services/webhook/signature"
)

// A receiver verifies a delivery before acting on it: read the raw body (not re-encoded JSON),
// check it against the endpoint's secret, and deduplicate on webhook-id.
func ExampleVerify() {
	// The secret shown once when the endpoint was created.
	const secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	key, err := signature.ParseSecret(secret)
	if err != nil {
		panic(err)
	}
	// A fixed clock keeps the example's output stable; a receiver passes time.Now().
	now := time.Unix(1700000000, 0)

	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := signature.Verify(r.Header, body, key, now, signature.DefaultTolerance); err != nil {
			// Answer 4xx without saying why: the reason is for the receiver's own logs.
			switch {
			case errors.Is(err, signature.ErrTimestamp):
				fmt.Println("refused: signed too long ago (a replay?) or clocks disagree")
			case errors.Is(err, signature.ErrMismatch):
				fmt.Println("refused: signature does not match")
			default:
				fmt.Println("refused: not a signed delivery")
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Printf("accepted event %s: %s\n", r.Header.Get("webhook-id"), body)
		w.WriteHeader(http.StatusNoContent)
	})

	// What Puente sends.
	body := []byte(`{"type":"consent.authorised"}`)
	deliver := func(signedAt time.Time) {
		r := httptest.NewRequest(http.MethodPost, "/hooks/puente", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		signature.Sign(r.Header, "evt_01", signedAt, body, key)
		receiver.ServeHTTP(httptest.NewRecorder(), r)
	}
	deliver(now)
	deliver(now.Add(-time.Hour))

	// A body altered on the way.
	r := httptest.NewRequest(http.MethodPost, "/hooks/puente", bytes.NewReader([]byte(`{"type":"consent.revoked"}`)))
	signature.Sign(r.Header, "evt_01", now, body, key)
	receiver.ServeHTTP(httptest.NewRecorder(), r)

	// Output:
	// accepted event evt_01: {"type":"consent.authorised"}
	// refused: signed too long ago (a replay?) or clocks disagree
	// refused: signature does not match
}
