package sandbox_test

import (
	"context"
	"testing"
	"time"

	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

// FuzzAnswerAndPoll feeds arbitrary state, rounds and answers to Answer and Poll: they may return
// errors, never panic, and whatever they return must be a well-formed outcome.
func FuzzAnswerAndPoll(f *testing.F) {
	p := sandbox.New(sandbox.WithClock(func() time.Time { return t0 }))
	ctx := context.Background()
	insts, err := p.Institutions(ctx)
	if err != nil {
		f.Fatal(err)
	}
	for _, user := range []string{"user_otp", "user_otp2", "user_image", "user_captcha", "user_otp_timeout", "user_slow"} {
		out, err := p.Start(ctx, connection.Login{
			ConnectionID: "con_F",
			Institution:  insts[0],
			Credentials:  map[string]string{"username": user, "password": "pass_good"},
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out.State, 0, "123456", uint8(0))
		f.Add(out.State, 1, "wrong", uint8(0))
	}
	f.Add([]byte(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_otp2","phase":"mfa","step":7}`), 3, "4321", uint8(0))
	f.Add([]byte(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_slow","phase":"running","polls":-1}`), -1, "", uint8(0))
	f.Add([]byte(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_otp","phase":"mfa","round":9223372036854775807,"expires":9223372036854775807}`), 1<<62, "x", uint8(0))
	f.Add([]byte("null"), 0, "", uint8(2))
	f.Add([]byte{}, 0, "", uint8(3))

	f.Fuzz(func(t *testing.T, state []byte, round int, answer string, inst uint8) {
		l := connection.Login{
			ConnectionID: "con_F",
			Institution:  insts[int(inst)%len(insts)],
			State:        state,
			Round:        round,
		}
		answers := map[string]string{"otp": answer, "pin": answer, "image": answer, "captcha": answer}
		if out, err := p.Answer(ctx, l, answers); err == nil {
			checkOutcome(t, "Answer", out)
		}
		if out, err := p.Poll(ctx, l); err == nil {
			checkOutcome(t, "Poll", out)
		}
		if out, err := p.Callback(ctx, l, map[string]string{"result": answer}); err == nil {
			checkOutcome(t, "Callback", out)
		}
	})
}

func checkOutcome(t *testing.T, call string, out connection.Outcome) {
	t.Helper()
	switch out.Status {
	case connection.WaitingMFA:
		if out.Challenge == nil || len(out.Challenge.Fields) == 0 || out.Challenge.ID == "" || len(out.State) == 0 {
			t.Fatalf("%s: WAITING_MFA outcome %+v", call, out)
		}
	case connection.Running:
		if out.PollAfter <= 0 || len(out.State) == 0 {
			t.Fatalf("%s: RUNNING outcome %+v", call, out)
		}
	case connection.Succeeded:
	case connection.Failed:
		if out.Reason == connection.NoReason {
			t.Fatalf("%s: FAILED outcome without a reason", call)
		}
	default:
		t.Fatalf("%s: status %q", call, out.Status)
	}
	if out.UpstreamCode == "" {
		t.Fatalf("%s: no upstream code", call)
	}
}
