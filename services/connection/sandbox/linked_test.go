package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/services/connection"
	"puente.dev/services/connection/sandbox"
)

// linked is the state of a linked login, as the extraction service's sandbox adapter reads it.
type linked struct {
	V     int    `json:"v"`
	Inst  string `json:"inst"`
	User  string `json:"user"`
	Phase string `json:"phase"`
	Day   int    `json:"day"`
}

func decodeLinked(t *testing.T, raw []byte) linked {
	t.Helper()
	var s linked
	require.NoError(t, json.Unmarshal(raw, &s), "state %q", raw)
	return s
}

func TestASuccessfulLoginKeepsWhoseBankItIs(t *testing.T) {
	for _, tc := range []struct {
		name, institution, username string
		then                        []map[string]string // answers; nil: a poll
		wantUser                    string
	}{
		{"user_good", sandbox.InstitutionGood, "user_good", nil, "user_good"},
		{"usernames as the sandbox normalises them", sandbox.InstitutionGood, "  User_Good ", nil, "user_good"},
		{"user_partial", sandbox.InstitutionGood, "user_partial", nil, "user_partial"},
		{"user_relogin at a French bank", "sandbox-fr-banque-lumiere", "user_relogin", nil, "user_relogin"},
		{"user_otp after the code", sandbox.InstitutionGood, "user_otp", []map[string]string{{"otp": sandbox.OTPCode}}, "user_otp"},
		{"user_otp2 after code and PIN", sandbox.InstitutionGood, "user_otp2", []map[string]string{{"otp": sandbox.OTPCode}, {"pin": sandbox.PIN}}, "user_otp2"},
		{"user_slow after its polls", sandbox.InstitutionGood, "user_slow", []map[string]string{nil, nil}, "user_slow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, tc.institution, tc.username, sandbox.GoodPassword)
			out := d.start()
			for _, a := range tc.then {
				if a == nil {
					out = d.poll()
				} else {
					out = d.answer(a)
				}
			}
			require.Equal(t, connection.Succeeded, out.Status)
			require.Equal(t, linked{V: 1, Inst: tc.institution, User: tc.wantUser, Phase: "linked", Day: 0}, decodeLinked(t, out.State))
			require.NotContains(t, string(out.State), sandbox.GoodPassword)
		})
	}

	t.Run("a redirect approved names the connection", func(t *testing.T) {
		p := sandbox.New()
		for _, ext := range []string{sandbox.InstitutionRedirect, "sandbox-br-banco-aurora"} {
			l := connection.Login{ConnectionID: "con_01JREDIRECTCONNECTION00000", Institution: mustInstitution(t, p, ext)}
			out, err := p.Callback(context.Background(), l, map[string]string{"result": "approve"})
			require.NoError(t, err)
			require.Equal(t, connection.Succeeded, out.Status)
			require.Equal(t, linked{V: 1, Inst: ext, User: l.ConnectionID, Phase: "linked"}, decodeLinked(t, out.State))
		}
	})

	t.Run("failures and challenges are not linked", func(t *testing.T) {
		for _, user := range []string{"user_otp", "user_slow"} {
			out := newDriver(t, sandbox.InstitutionGood, user, sandbox.GoodPassword).start()
			require.NotEqual(t, "linked", decodeLinked(t, out.State).Phase, user)
		}
		out := newDriver(t, sandbox.InstitutionGood, "user_locked", sandbox.GoodPassword).start()
		require.Equal(t, connection.Failed, out.Status)
		require.Empty(t, out.State)
	})
}

// linkedLogin is a Login of user_good at Banco Arena, linked, on day.
func linkedLogin(t *testing.T, p *sandbox.Provider, day int) connection.Login {
	t.Helper()
	state, err := json.Marshal(linked{V: 1, Inst: sandbox.InstitutionGood, User: "user_good", Phase: "linked", Day: day})
	require.NoError(t, err)
	return connection.Login{ConnectionID: "con_X", Institution: mustInstitution(t, p, sandbox.InstitutionGood), State: state}
}

func TestAdvanceDaysMovesTheBank(t *testing.T) {
	p := sandbox.New()
	var _ connection.TimeMachine = p

	t.Run("from a fresh login", func(t *testing.T) {
		d := newDriver(t, sandbox.InstitutionGood, "user_good", sandbox.GoodPassword)
		l := d.l
		l.State = d.start().State
		before := bytes.Clone(l.State)
		state, date, err := d.p.AdvanceDays(l, 1)
		require.NoError(t, err)
		require.Equal(t, "2026-01-02", date)
		require.Equal(t, linked{V: 1, Inst: sandbox.InstitutionGood, User: "user_good", Phase: "linked", Day: 1}, decodeLinked(t, state))
		require.Equal(t, before, l.State, "the login's own state is not changed")
	})

	for _, tc := range []struct {
		from, days int
		wantDay    int
		wantDate   string
	}{
		{0, 1, 1, "2026-01-02"},
		{0, 31, 31, "2026-02-01"},
		{31, 28, 59, "2026-03-01"},
		{0, 365, 365, "2027-01-01"},
		{0, sandbox.MaxDays, sandbox.MaxDays, "2035-12-30"},
		{sandbox.MaxDays - 1, 1, sandbox.MaxDays, "2035-12-30"},
	} {
		state, date, err := p.AdvanceDays(linkedLogin(t, p, tc.from), tc.days)
		require.NoError(t, err, "%d days from day %d", tc.days, tc.from)
		require.Equal(t, tc.wantDate, date, "%d days from day %d", tc.days, tc.from)
		s := decodeLinked(t, state)
		require.Equal(t, tc.wantDay, s.Day)
		require.Equal(t, "user_good", s.User)
		require.Equal(t, "linked", s.Phase)
	}

	t.Run("one step at a time adds up", func(t *testing.T) {
		l := linkedLogin(t, p, 0)
		var date string
		for range 10 {
			var err error
			l.State, date, err = p.AdvanceDays(l, 3)
			require.NoError(t, err)
		}
		require.Equal(t, "2026-01-31", date)
		require.Equal(t, 30, decodeLinked(t, l.State).Day)
	})
}

func TestAdvanceDaysRefuses(t *testing.T) {
	p := sandbox.New()
	otp := newDriver(t, sandbox.InstitutionGood, "user_otp", sandbox.GoodPassword)
	mfaState := otp.start().State
	slow := newDriver(t, sandbox.InstitutionGood, "user_slow", sandbox.GoodPassword)
	runningState := slow.start().State
	arena := mustInstitution(t, p, sandbox.InstitutionGood)
	with := func(state []byte) connection.Login {
		return connection.Login{ConnectionID: "con_X", Institution: arena, State: state}
	}
	otherBank := linkedLogin(t, p, 0)
	otherBank.Institution = mustInstitution(t, p, "sandbox-fr-banque-lumiere")

	for _, tc := range []struct {
		name string
		l    connection.Login
		days int
	}{
		{"a login waiting for two-factor", with(mfaState), 1},
		{"a login still running", with(runningState), 1},
		{"a login without state", with(nil), 1},
		{"a state that is not JSON", with([]byte("{nope")), 1},
		{"a state of another version", with([]byte(`{"v":2,"inst":"sandbox-cl-banco-arena","user":"user_good","phase":"linked"}`)), 1},
		{"a linked state without a user", with([]byte(`{"v":1,"inst":"sandbox-cl-banco-arena","phase":"linked"}`)), 1},
		{"a linked state on a negative day", with([]byte(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_good","phase":"linked","day":-1}`)), 1},
		{"the state of another institution", otherBank, 1},
		{"zero days", linkedLogin(t, p, 0), 0},
		{"negative days", linkedLogin(t, p, 5), -1},
		{"past the sandbox's last day", linkedLogin(t, p, 0), sandbox.MaxDays + 1},
		{"past the last day from a later day", linkedLogin(t, p, sandbox.MaxDays), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, date, err := p.AdvanceDays(tc.l, tc.days)
			require.Error(t, err)
			require.Nil(t, state)
			require.Empty(t, date)
		})
	}
}
