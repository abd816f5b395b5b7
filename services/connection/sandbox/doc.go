// Package sandbox is the scripted test upstream, in the spirit of Plaid's sandbox: a fixed
// institution catalog and a set of test users whose logins behave the same way every time.
//
// It has no network and no database. Everything it needs to continue a login travels in
// Login.State (a small JSON document it returns in Outcome.State and gets back on the next call)
// and Login.Round. Upstream codes follow Syncfy's job codes (1xx running, 2xx done, 4xx user
// errors, 410/411 two-factor, 5xx upstream errors).
//
// # Scripted users
//
// A login is scripted by the value of the institution's username field (the field with
// is_username; trimmed, case-insensitive). The password is always "pass_good"; any other password
// fails INVALID_CREDENTIALS "401". Every username not listed here fails the same way.
//
//	| Username           | Password   | What happens                                                                        | Final status / reason       | Code |
//	|--------------------|------------|-------------------------------------------------------------------------------------|-----------------------------|------|
//	| user_good          | pass_good  | Start succeeds at once                                                              | SUCCEEDED                   | 200  |
//	| user_otp           | pass_good  | Challenge: TEXT "otp" ("Code sent by SMS"); answer 123456                           | SUCCEEDED                   | 200  |
//	| user_otp2          | pass_good  | Two rounds: TEXT "otp" (123456), then PASSWORD "pin" (4321)                         | SUCCEEDED                   | 200  |
//	| user_image         | pass_good  | Challenge: OPTIONS "image", 4 coloured PNG squares; pick the one labelled           | SUCCEEDED                   | 200  |
//	|                    |            | "The green square" (value "img_3")                                                  |                             |      |
//	| user_captcha       | pass_good  | Challenge: TEXT "captcha" with a PNG captcha in Challenge.Image; answer PUENTE      | SUCCEEDED                   | 200  |
//	|                    |            | (case-insensitive)                                                                  |                             |      |
//	| user_otp_timeout   | pass_good  | Like user_otp, but the challenge expires 3 seconds after it is asked: the service   | FAILED MFA_TIMEOUT          | 411  |
//	|                    |            | fails the connection with MFA_TIMEOUT when nobody answers (an answer that reaches   | (SUCCEEDED if answered in   |      |
//	|                    |            | the sandbox after the deadline fails MFA_TIMEOUT "411" too)                         | time)                       |      |
//	| user_slow          | pass_good  | Start returns RUNNING "102" with PollAfter 2s; the first Poll RUNNING "102" again   | SUCCEEDED                   | 200  |
//	|                    |            | (2s); the second Poll succeeds                                                      |                             |      |
//	| user_relogin       | pass_good  | Succeeds like user_good; the service's sandbox controls later flip the connection   | SUCCEEDED (later            | 200  |
//	|                    |            | to LOGIN_REQUIRED to exercise re-authentication                                     | LOGIN_REQUIRED)             |      |
//	| user_partial       | pass_good  | Succeeds like user_good; its credit card's transactions cannot be read, so a     | SUCCEEDED                   | 200  |
//	|                    |            | refresh of its data ends with that account in ERROR (INSTITUTION_UNAVAILABLE)       |                             |      |
//	| user_accounts      | pass_good  | Challenge with AccountSelection: one OPTIONS field account_<id> per account of  | SUCCEEDED                   | 200  |
//	|                    |            | the bank, answered "share" or "skip" (as Powens' accounts arrive disabled); the     |                             |      |
//	|                    |            | skipped accounts are never extracted; sharing none is asked again once             |                             |      |
//	| user_badpass       | (any)      | Wrong password whatever is sent                                                     | FAILED INVALID_CREDENTIALS  | 401  |
//	| user_locked        | pass_good  | The account is locked at the institution                                            | FAILED LOCKED               | 405  |
//	| user_action        | pass_good  | The user must do something on the institution's own site first                      | FAILED USER_ACTION_REQUIRED | 408  |
//	| (anyone else)      | (any)      | Unknown user                                                                        | FAILED INVALID_CREDENTIALS  | 401  |
//	| (any user) at      | (any)      | Banco Caído (sandbox-cl-banco-caido) is DOWN: every login fails                     | FAILED                      | 500  |
//	| Banco Caído        |            |                                                                                     | INSTITUTION_UNAVAILABLE     |      |
//
// Two-factor rules, for every challenge: the outcome is WAITING_MFA with code "410"; the challenge
// expires 2 minutes after it is asked (3 seconds for user_otp_timeout), measured on the clock given
// with WithClock; Challenge.Round is Login.Round+1 and Challenge.ID is "chl_<connection id
// suffix>_<round>", so it is unique per round. A wrong (or missing) answer asks the same question
// again once, as a new challenge of the next round with code "410"; a second wrong answer to the
// same question fails MFA_FAILED "403" (Syncfy's InvalidToken).
//
// Institutions with a token field (is_token) or a SELECT field need those filled in too: a missing
// required field, or a SELECT value that is not one of its options, fails INVALID_CREDENTIALS "401".
//
// # Redirect institutions
//
// REDIRECT institutions (Banco Cordillera in Chile, Banco Aurora in Brazil, ...) have no form.
// Authorize returns the URL of a fake hosted consent page,
//
//	https://sandbox.puente.dev/authorize?institution=<ExternalID>&state=<state>&redirect_uri=<callback URL>
//
// which does not exist: tests play the user by calling the service's callback themselves with the
// state and result=approve (SUCCEEDED "200") or result=deny (FAILED REDIRECT_DENIED
// "access_denied"). Any other or missing result fails REDIRECT_DENIED "invalid_request". Start,
// Answer and Poll on a REDIRECT institution, and Authorize or Callback on a CREDENTIALS one, are
// programming errors and return an error.
//
// # Data
//
// A login that succeeds keeps, in its state, whose bank it is: the username (the connection id
// for a redirect) and the bank's day, 0 at first. The extraction service's sandbox adapter reads
// that bank from pkg/sandboxdata, the same in every call and every process, with dates relative
// to the fixed anchor 2026-01-01, not to the current time. AdvanceDays (the sandbox control
// POST /v1/sandbox/connections/{id}:advanceDays) moves the day on: new transactions appear
// pending, pending ones book or are released, booked ones get cleaner descriptions.
package sandbox
