package sandbox_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

// step is one call after Start: an Answer with answers, or a Poll.
type step struct {
	poll    bool
	answers map[string]string
	want    want
}

func answer(field, value string, w want) step {
	return step{answers: map[string]string{field: value}, want: w}
}

func poll(w want) step { return step{poll: true, want: w} }

func TestScriptedUsersEndToEnd(t *testing.T) {
	const good, down = sandbox.InstitutionGood, sandbox.InstitutionDown
	tests := []struct {
		name        string
		institution string
		user, pass  string
		start       want
		then        []step
	}{
		{"user_good logs in at once", good, "user_good", "pass_good", wantSucceeded, nil},
		{"user_good with a wrong password is refused", good, "user_good", "pass_bad", failedWith(connection.InvalidCredentials, "401"), nil},
		{"usernames are trimmed and case-insensitive", good, "  User_Good ", "pass_good", wantSucceeded, nil},
		{"user_relogin logs in at once", good, "user_relogin", "pass_good", wantSucceeded, nil},
		{"user_badpass is refused whatever the password", good, "user_badpass", "pass_good", failedWith(connection.InvalidCredentials, "401"), nil},
		{"user_locked is locked", good, "user_locked", "pass_good", failedWith(connection.Locked, "405"), nil},
		{"user_locked with a wrong password is refused first", good, "user_locked", "nope", failedWith(connection.InvalidCredentials, "401"), nil},
		{"user_action must act on the bank's site", good, "user_action", "pass_good", failedWith(connection.UserActionRequired, "408"), nil},
		{"an unknown user is refused", good, "someone_else", "pass_good", failedWith(connection.InvalidCredentials, "401"), nil},
		{"an empty password is refused", good, "user_good", "", failedWith(connection.InvalidCredentials, "401"), nil},
		{"user_good at the down institution is unavailable", down, "user_good", "pass_good", failedWith(connection.InstitutionUnavailable, "500"), nil},
		{"user_otp at the down institution is unavailable", down, "user_otp", "pass_good", failedWith(connection.InstitutionUnavailable, "500"), nil},
		{"an unknown user at the down institution is unavailable", down, "nobody", "x", failedWith(connection.InstitutionUnavailable, "500"), nil},
		{"user_otp succeeds with the SMS code", good, "user_otp", "pass_good", wantMFA, []step{
			answer("otp", "123456", wantSucceeded),
		}},
		{"user_otp is asked again after one wrong code and then succeeds", good, "user_otp", "pass_good", wantMFA, []step{
			answer("otp", "000000", wantMFA),
			answer("otp", "123456", wantSucceeded),
		}},
		{"user_otp fails after two wrong codes", good, "user_otp", "pass_good", wantMFA, []step{
			answer("otp", "000000", wantMFA),
			answer("otp", "111111", failedWith(connection.MFAFailed, "403")),
		}},
		{"user_otp treats a missing answer as wrong", good, "user_otp", "pass_good", wantMFA, []step{
			answer("pin", "123456", wantMFA),
			{answers: nil, want: failedWith(connection.MFAFailed, "403")},
		}},
		{"user_otp2 answers an SMS code then a PIN", good, "user_otp2", "pass_good", wantMFA, []step{
			answer("otp", "123456", wantMFA),
			answer("pin", "4321", wantSucceeded),
		}},
		{"user_otp2 gets one retry on each question", good, "user_otp2", "pass_good", wantMFA, []step{
			answer("otp", "999999", wantMFA),
			answer("otp", "123456", wantMFA),
			answer("pin", "0000", wantMFA),
			answer("pin", "4321", wantSucceeded),
		}},
		{"user_otp2 fails on two wrong PINs", good, "user_otp2", "pass_good", wantMFA, []step{
			answer("otp", "123456", wantMFA),
			answer("pin", "0000", wantMFA),
			answer("pin", "1111", failedWith(connection.MFAFailed, "403")),
		}},
		{"user_image succeeds by picking the green square", good, "user_image", "pass_good", wantMFA, []step{
			answer("image", sandbox.GreenSquare, wantSucceeded),
		}},
		{"user_image fails after picking red twice", good, "user_image", "pass_good", wantMFA, []step{
			answer("image", "img_1", wantMFA),
			answer("image", "img_1", failedWith(connection.MFAFailed, "403")),
		}},
		{"user_captcha succeeds with the captcha text in lower case", good, "user_captcha", "pass_good", wantMFA, []step{
			answer("captcha", " puente ", wantSucceeded),
		}},
		{"user_captcha fails after two misreadings", good, "user_captcha", "pass_good", wantMFA, []step{
			answer("captcha", "PUENT3", wantMFA),
			answer("captcha", "PVENTE", failedWith(connection.MFAFailed, "403")),
		}},
		{"user_otp_timeout succeeds when answered in time", good, "user_otp_timeout", "pass_good", wantMFA, []step{
			answer("otp", "123456", wantSucceeded),
		}},
		{"user_slow runs for two polls and succeeds", good, "user_slow", "pass_good", wantRunning, []step{
			poll(wantRunning),
			poll(wantSucceeded),
		}},
		{"user_good logs in at a French bank", "sandbox-fr-banque-lumiere", "user_good", "pass_good", wantSucceeded, nil},
		{"user_otp logs in at a Brazilian cooperative", "sandbox-br-cooperativa-serra", "user_otp", "pass_good", wantMFA, []step{
			answer("otp", "123456", wantSucceeded),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, tt.institution, tt.user, tt.pass)
			tt.start.check(t, "Start", d.start())
			for i, s := range tt.then {
				var out connection.Outcome
				if s.poll {
					out = d.poll()
				} else {
					out = d.answer(s.answers)
				}
				s.want.check(t, "call "+string(rune('1'+i)), out)
			}
		})
	}
}

func TestChallengesAreNewPerRoundAndExpire(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_otp", "pass_good")
	first := d.start().Challenge
	if first == nil {
		t.Fatal("no challenge")
	}
	if first.Round != 1 || first.ID != "chl_01JTESTCONNECTION_1" {
		t.Errorf("first challenge is %q round %d", first.ID, first.Round)
	}
	if !first.ExpiresAt.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("first challenge expires at %v, want 2 minutes after %v", first.ExpiresAt, t0)
	}
	if f := first.Fields; len(f) != 1 || f[0].Name != "otp" || f[0].Type != connection.ChallengeText || f[0].Label != "Code sent by SMS" || len(f[0].Options) != 0 {
		t.Errorf("first challenge fields: %+v", first.Fields)
	}

	d.clock.Advance(30 * time.Second)
	second := d.answer(map[string]string{"otp": "000000"}).Challenge
	if second == nil {
		t.Fatal("a wrong answer was not asked again")
	}
	if second.Round != 2 || second.ID == first.ID || second.ID != "chl_01JTESTCONNECTION_2" {
		t.Errorf("second challenge is %q round %d", second.ID, second.Round)
	}
	if !second.ExpiresAt.Equal(t0.Add(30*time.Second + 2*time.Minute)) {
		t.Errorf("second challenge expires at %v", second.ExpiresAt)
	}
	if len(second.Fields) != 1 || second.Fields[0].Name != "otp" {
		t.Errorf("second challenge asks %+v, want the same otp field", second.Fields)
	}
}

func TestRoundsDoNotRepeatWhenTheServiceCountsAfterAnswering(t *testing.T) {
	// A service that increments Login.Round only after Answer returns still sees rounds 1, 2, 3.
	p := sandbox.New(sandbox.WithClock(func() time.Time { return t0 }))
	l := connection.Login{
		ConnectionID: "con_X",
		Institution:  mustInstitution(t, p, sandbox.InstitutionGood),
		Credentials:  map[string]string{"username": "user_otp2", "password": "pass_good"},
	}
	ctx := context.Background()
	out, err := p.Start(ctx, l)
	if err != nil || out.Challenge == nil || out.Challenge.Round != 1 {
		t.Fatalf("Start: %+v, %v", out, err)
	}
	for i, a := range []map[string]string{{"otp": "bad"}, {"otp": "123456"}} {
		l.State = out.State
		if out, err = p.Answer(ctx, l, a); err != nil || out.Challenge == nil {
			t.Fatalf("Answer %d: %+v, %v", i, out, err)
		}
		l.Round++
		if want := i + 2; out.Challenge.Round != want {
			t.Errorf("Answer %d: round %d, want %d", i, out.Challenge.Round, want)
		}
	}
}

func TestUserOTPTimeoutChallengeExpiresInThreeSeconds(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_otp_timeout", "pass_good")
	c := d.start().Challenge
	if c == nil || !c.ExpiresAt.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("challenge %+v, want one expiring 3s after %v", c, t0)
	}
	d.clock.Advance(3*time.Second + time.Millisecond)
	failedWith(connection.MFATimeout, "411").check(t, "late Answer", d.answer(map[string]string{"otp": "123456"}))
}

func TestAnAnswerAfterTheTwoMinuteDeadlineTimesOut(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_otp", "pass_good")
	d.start()
	d.clock.Advance(2*time.Minute + time.Second)
	failedWith(connection.MFATimeout, "411").check(t, "late Answer", d.answer(map[string]string{"otp": "123456"}))
}

func TestUserSlowAsksToPollEveryTwoSeconds(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_slow", "pass_good")
	for i, out := range []connection.Outcome{d.start(), d.poll()} {
		if out.PollAfter != 2*time.Second {
			t.Errorf("outcome %d: PollAfter %v, want 2s", i, out.PollAfter)
		}
	}
}

func decodePNG(t *testing.T, what, b64 string) (w, h int) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("%s: not base64: %v", what, err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", what, err)
	}
	return img.Bounds().Dx(), img.Bounds().Dy()
}

func TestUserImageShowsFourSquares(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_image", "pass_good")
	c := d.start().Challenge
	if c == nil || len(c.Fields) != 1 {
		t.Fatalf("challenge %+v", c)
	}
	f := c.Fields[0]
	if f.Name != "image" || f.Type != connection.ChallengeOptions || len(f.Options) != 4 {
		t.Fatalf("field %+v, want an OPTIONS field image with 4 options", f)
	}
	var green string
	seen := map[string]bool{}
	for _, o := range f.Options {
		if w, h := decodePNG(t, "option "+o.Value, o.Image); w != 8 || h != 8 {
			t.Errorf("option %s is %dx%d, want 8x8", o.Value, w, h)
		}
		if seen[o.Image] || seen[o.Value] {
			t.Errorf("option %s repeats a value or an image", o.Value)
		}
		seen[o.Image], seen[o.Value] = true, true
		if o.Label == "The green square" {
			green = o.Value
		}
	}
	if green == "" {
		t.Fatal("no option is labelled The green square")
	}
	wantSucceeded.check(t, "Answer", d.answer(map[string]string{"image": green}))
}

func TestUserCaptchaShowsAPNG(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_captcha", "pass_good")
	c := d.start().Challenge
	if c == nil || len(c.Fields) != 1 || c.Fields[0].Name != "captcha" || c.Fields[0].Type != connection.ChallengeText {
		t.Fatalf("challenge %+v, want a TEXT captcha field", c)
	}
	if w, h := decodePNG(t, "captcha", c.Image); w < 50 || h < 10 {
		t.Errorf("captcha is %dx%d", w, h)
	}
}

func TestChallengesCannotBeChangedThroughTheirOutcome(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_image", "pass_good")
	d.start().Challenge.Fields[0].Options[2].Label = "changed"
	again := newDriver(t, sandbox.InstitutionGood, "user_image", "pass_good").start()
	if again.Challenge.Fields[0].Options[2].Label != "The green square" {
		t.Error("changing one challenge changed the next one")
	}
}

func TestFormFieldsBeyondUsernameAndPassword(t *testing.T) {
	tests := []struct {
		name        string
		institution string
		creds       map[string]string
		want        want
	}{
		{"the token institution logs in with a token", "sandbox-cl-banco-arena-empresas",
			map[string]string{"username": "user_good", "password": "pass_good", "token": "12345678"}, wantSucceeded},
		{"the token institution refuses a login without a token", "sandbox-cl-banco-arena-empresas",
			map[string]string{"username": "user_good", "password": "pass_good"}, failedWith(connection.InvalidCredentials, "401")},
		{"the select institution logs in with a known account type", "sandbox-mx-banco-tesoro",
			map[string]string{"account_type": "02", "username": "user_good", "password": "pass_good"}, wantSucceeded},
		{"the select institution refuses an unknown account type", "sandbox-mx-banco-tesoro",
			map[string]string{"account_type": "03", "username": "user_good", "password": "pass_good"}, failedWith(connection.InvalidCredentials, "401")},
		{"the select institution refuses a login without an account type", "sandbox-mx-banco-tesoro",
			map[string]string{"username": "user_good", "password": "pass_good"}, failedWith(connection.InvalidCredentials, "401")},
		{"a login without a username is refused", sandbox.InstitutionGood,
			map[string]string{"password": "pass_good"}, failedWith(connection.InvalidCredentials, "401")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriverCreds(t, tt.institution, tt.creds)
			tt.want.check(t, "Start", d.start())
		})
	}
}

func TestRedirectInstitutions(t *testing.T) {
	ctx := context.Background()
	p := sandbox.New()
	for _, ext := range []string{sandbox.InstitutionRedirect, "sandbox-br-banco-aurora"} {
		l := connection.Login{ConnectionID: "con_R", Institution: mustInstitution(t, p, ext)}
		t.Run("authorize at "+ext+" points at the hosted page with the state and callback", func(t *testing.T) {
			const callback = "https://api.puente.test/v1/connections/callback?x=1&y=a b"
			const state = "st&ate/=1"
			got, err := p.Authorize(ctx, l, state, callback)
			if err != nil {
				t.Fatal(err)
			}
			want := "https://sandbox.puente.dev/authorize?institution=" + ext + "&state=" + url.QueryEscape(state) + "&redirect_uri=" + url.QueryEscape(callback)
			if got.URL != want {
				t.Errorf("got  %s\nwant %s", got.URL, want)
			}
			u, err := url.Parse(got.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("institution") != ext || q.Get("state") != state || q.Get("redirect_uri") != callback {
				t.Errorf("query %v does not round-trip", q)
			}
		})
		t.Run("authorize at "+ext+" points at the configured hosted page", func(t *testing.T) {
			got, err := sandbox.New(sandbox.WithAuthorizeURL("http://127.0.0.1:8080/connect/sandbox/authorize")).Authorize(ctx, l, "s1", "http://127.0.0.1:8080/v1/connections:callback")
			if err != nil {
				t.Fatal(err)
			}
			if want := "http://127.0.0.1:8080/connect/sandbox/authorize?institution=" + ext + "&state=s1&"; !strings.HasPrefix(got.URL, want) {
				t.Errorf("got %s, want it to start with %s", got.URL, want)
			}
		})
		for _, tt := range []struct {
			name   string
			params map[string]string
			want   want
		}{
			{"approving succeeds", map[string]string{"state": "s", "result": "approve"}, wantSucceeded},
			{"denying fails access_denied", map[string]string{"state": "s", "result": "deny"}, failedWith(connection.RedirectDenied, "access_denied")},
			{"another result fails invalid_request", map[string]string{"state": "s", "result": "maybe"}, failedWith(connection.RedirectDenied, "invalid_request")},
			{"no result fails invalid_request", map[string]string{"state": "s"}, failedWith(connection.RedirectDenied, "invalid_request")},
			{"no parameters fail invalid_request", nil, failedWith(connection.RedirectDenied, "invalid_request")},
		} {
			t.Run("at "+ext+" "+tt.name, func(t *testing.T) {
				out, err := p.Callback(ctx, l, tt.params)
				if err != nil {
					t.Fatal(err)
				}
				tt.want.check(t, "Callback", out)
			})
		}
	}
}

func TestMisuseIsAnError(t *testing.T) {
	ctx := context.Background()
	p := sandbox.New()
	redirect := connection.Login{Institution: mustInstitution(t, p, sandbox.InstitutionRedirect),
		Credentials: map[string]string{"username": "user_good", "password": "pass_good"}}
	creds := connection.Login{Institution: mustInstitution(t, p, sandbox.InstitutionGood),
		Credentials: map[string]string{"username": "user_good", "password": "pass_good"}}
	otherBank := connection.Login{Institution: mustInstitution(t, p, "sandbox-fr-banque-lumiere")}

	otpStart, err := p.Start(ctx, connection.Login{Institution: creds.Institution,
		Credentials: map[string]string{"username": "user_otp", "password": "pass_good"}})
	if err != nil {
		t.Fatal(err)
	}
	slowStart, err := p.Start(ctx, connection.Login{Institution: creds.Institution,
		Credentials: map[string]string{"username": "user_slow", "password": "pass_good"}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(l connection.Login, state []byte) connection.Login { l.State = state; return l }
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name string
		call func() error
	}{
		{"Start at a redirect institution", func() error { _, err := p.Start(ctx, redirect); return err }},
		{"Answer at a redirect institution", func() error { _, err := p.Answer(ctx, with(redirect, otpStart.State), nil); return err }},
		{"Poll at a redirect institution", func() error { _, err := p.Poll(ctx, with(redirect, slowStart.State)); return err }},
		{"Authorize at a credentials institution", func() error {
			_, err := p.Authorize(ctx, creds, "s", "https://x.test/cb")
			return err
		}},
		{"Callback at a credentials institution", func() error {
			_, err := p.Callback(ctx, creds, map[string]string{"result": "approve"})
			return err
		}},
		{"Authorize without a state", func() error { _, err := p.Authorize(ctx, redirect, "", "https://x.test/cb"); return err }},
		{"Authorize with a relative callback", func() error { _, err := p.Authorize(ctx, redirect, "s", "/cb"); return err }},
		{"Answer without state", func() error { _, err := p.Answer(ctx, creds, map[string]string{"otp": "123456"}); return err }},
		{"Answer with garbage state", func() error {
			_, err := p.Answer(ctx, with(creds, []byte("{not json")), map[string]string{"otp": "123456"})
			return err
		}},
		{"Answer on a running login", func() error {
			_, err := p.Answer(ctx, with(creds, slowStart.State), map[string]string{"otp": "123456"})
			return err
		}},
		{"Poll on a login waiting for two-factor", func() error { _, err := p.Poll(ctx, with(creds, otpStart.State)); return err }},
		{"Answer with the state of another institution", func() error {
			_, err := p.Answer(ctx, with(otherBank, otpStart.State), map[string]string{"otp": "123456"})
			return err
		}},
		{"Start with a canceled context", func() error { _, err := p.Start(canceled, creds); return err }},
		{"Institutions with a canceled context", func() error { _, err := p.Institutions(canceled); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an error", func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := p.Start(canceled, creds); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a canceled context: %v, want context.Canceled", err)
	}
}

func TestStateIsSmallJSONWithoutThePassword(t *testing.T) {
	for _, user := range []string{"user_otp", "user_otp2", "user_image", "user_captcha", "user_slow"} {
		d := newDriver(t, sandbox.InstitutionGood, user, "pass_good")
		out := d.start()
		if len(out.State) > 256 || !strings.HasPrefix(string(out.State), "{") {
			t.Errorf("%s: state %q", user, out.State)
		}
		if bytes.Contains(out.State, []byte("pass_good")) {
			t.Errorf("%s: state holds the password: %s", user, out.State)
		}
	}
}

func TestName(t *testing.T) {
	if got := sandbox.New().Name(); got != "sandbox" {
		t.Errorf("Name() = %q", got)
	}
}

func TestUserAccountsChoosesTheAccountsToShare(t *testing.T) {
	d := newDriver(t, sandbox.InstitutionGood, "user_accounts", "pass_good")
	out := d.start()
	if out.Status != connection.WaitingMFA || out.Challenge == nil || !out.Challenge.AccountSelection {
		t.Fatalf("Start: %+v, want a choice of accounts", out)
	}
	ch := out.Challenge
	if len(ch.Fields) != 2 {
		t.Fatalf("%d fields, want one per account (checking and card)", len(ch.Fields))
	}
	for _, f := range ch.Fields {
		if f.Type != connection.ChallengeOptions || len(f.Options) != 2 || !strings.Contains(f.Label, "••••") {
			t.Errorf("field %+v: want share/skip options and a masked number in the label", f)
		}
	}

	// Sharing nothing is asked again once.
	none := map[string]string{ch.Fields[0].Name: sandbox.SkipAccount, ch.Fields[1].Name: sandbox.SkipAccount}
	again := d.answer(none)
	if again.Status != connection.WaitingMFA || again.Challenge.Round != ch.Round+1 {
		t.Fatalf("sharing nothing: %+v, want the question again", again)
	}
	done := d.answer(map[string]string{ch.Fields[0].Name: sandbox.ShareAccount, ch.Fields[1].Name: sandbox.SkipAccount})
	if done.Status != connection.Succeeded {
		t.Fatalf("a choice: %+v, want SUCCEEDED", done)
	}
	var state struct {
		Skipped []string `json:"skipped"`
	}
	if err := json.Unmarshal(done.State, &state); err != nil {
		t.Fatal(err)
	}
	if len(state.Skipped) != 1 || sandbox.AccountField(state.Skipped[0]) != ch.Fields[1].Name {
		t.Errorf("skipped %v, want the second account", state.Skipped)
	}

	twice := newDriver(t, sandbox.InstitutionGood, "user_accounts", "pass_good")
	twice.start()
	twice.answer(map[string]string{"account_nope": sandbox.ShareAccount})
	if out := twice.answer(map[string]string{}); out.Status != connection.Failed || out.Reason != connection.MFAFailed {
		t.Errorf("two unusable answers: %+v, want FAILED MFA_FAILED", out)
	}
}
