package syncfy_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"

	"puente.dev/pkg/upstream/syncfy"
)

// FuzzMinorUnits: an amount Syncfy writes with two decimals becomes exactly its centavos.
func FuzzMinorUnits(f *testing.F) {
	for _, c := range []int64{0, 29, -29, 1523457, -321029, 1, -1, 99999999999} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cents int64) {
		if cents > 1e15 || cents < -1e15 {
			return // beyond what a float64 holds exactly with two decimals
		}
		sign := ""
		if cents < 0 {
			sign = "-"
		}
		abs := int64(math.Abs(float64(cents)))
		written := fmt.Sprintf("%s%d.%02d", sign, abs/100, abs%100)
		var amount float64
		if err := json.Unmarshal([]byte(written), &amount); err != nil {
			t.Fatal(err)
		}
		if got := syncfy.MinorUnits(amount, "MXN"); got != cents {
			t.Fatalf("%s: %d, want %d", written, got, cents)
		}
	})
}

// FuzzJobStatus: whatever a status history holds, decoding it and mapping its last code never
// panics, and every code maps to one of the four statuses.
func FuzzJobStatus(f *testing.F) {
	f.Add([]byte(`[{"code":100},{"code":410,"address":"http://x/v1/jobs/1/twofa","twofa":[{"name":"token","type":"text","label":"Token"}]}]`))
	f.Add([]byte(`[{"code":"1"}]`))
	f.Add([]byte(`[{"code":` + strconv.Itoa(math.MaxInt32) + `}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var hist []syncfy.JobStatus
		if json.Unmarshal(body, &hist) != nil || len(hist) == 0 {
			return
		}
		c := syncfy.Lookup(hist[len(hist)-1].Code)
		switch c.Status {
		case syncfy.StatusRunning, syncfy.StatusWaitingMFA, syncfy.StatusSucceeded:
		case syncfy.StatusFailed:
			if c.Reason == "" {
				t.Fatalf("code %d fails without a reason", hist[len(hist)-1].Code)
			}
		default:
			t.Fatalf("code %d maps to %q", hist[len(hist)-1].Code, c.Status)
		}
	})
}
