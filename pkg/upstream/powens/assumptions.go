package powens

import "time"

// Every guess this package and its simulator rely on where Powens documents nothing, in one
// place. Each quotes the "Unknowns" entry (or the gap) it answers.

// Unknown 1, "BI-Signature-Date format → RFC 1123": the date is signed as an opaque string;
// the verifier checks freshness only when it parses as RFC 1123 (http.TimeFormat).
const SignatureDateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// Unknown 2, "Whether webhook requests also carry Authorization: Bearer <user token>": the
// simulator sends it; the verifier ignores it.
const WebhookCarriesUserToken = true

// Unknown 4, "End-to-end encryption of credential fields": field values are sent in plain text
// (over TLS); the simulator accepts them so.
const FieldsEncrypted = false

// Unknown 5, "Rate limits → none published": the client bounds itself to Config.RatePerSecond
// and honours a 429's Retry-After.

// Unknown 6, "Sandbox test bank for AIS": the test connector reuses the Pay test connector's
// UUID, and its login chooses the scenario. Beyond the four logins the unknown names (wrongpass,
// sca, otp, decoupled), the simulator scripts one login per other ConnectionState so that every
// state can be driven end to end: "webauth", "actionneeded", "passwordexpired", "ratelimiting",
// "unavailable", "bug".
const (
	TestConnectorUUID = "338178e6-3d01-564f-9a7b-52ca442459bf"
	// TestWebauthConnectorUUID is the simulator's webauth (redirect) connector; invented.
	TestWebauthConnectorUUID = "7a1c3b4e-5d6f-5a8b-9c0d-1e2f3a4b5c6d"
	// OTPField is the field additionalInformationNeeded asks for in the simulator.
	OTPField = "otp"
)

// Unknown 7, "HTTP status on create connection → 200 (spec) vs 201": any 2xx is accepted.

// Unknown 8, "Temporary-to-permanent conversion in the custom flow → GET /auth/token/code with
// the temporary token, then POST /auth/token/access".
const (
	PathInit   = "/auth/init"
	PathCode   = "/auth/token/code"
	PathAccess = "/auth/token/access"
)

// Unknown 9, "_links structure on lists": {"_links": {"next": {"href"}|null}}; the client
// follows next.href when present and otherwise pages by offset until a short page.
const PageSize = 1000 // [PYPOWENS]: the maximum page size

// TemporaryTokenLifetime is the documented 30 minutes of a temporary token ("temporary, 30 min"),
// used when /auth/init gives no expires_in.
const TemporaryTokenLifetime = 30 * time.Minute

// Per-account transactions: the spec documents GET /users/me/transactions without an account
// filter; [PYPOWENS] uses /users/me/accounts/{id}/transactions, which is what the client calls.
const PathAccountTransactions = "/users/me/accounts/%d/transactions"

// Webauth: redirect_uri must have no query string of its own (documented); field values go in
// the /webauth query beside the documented parameters ("submit their values along with these
// parameters"), by field name.

// Dates: naive "YYYY-MM-DD" / "YYYY-MM-DD HH:MM:SS" are Europe/Paris local time [FORMANCE].
const TimeZone = "Europe/Paris"

// Webhook event type: Powens registers one URL per event in the console and puts no type in the
// body. Puente registers one URL for all, so the verifier infers the type from the body's shape:
// a "connection" object with a "state" key is CONNECTION_SYNCED; otherwise the type is unknown.
const EventConnectionSynced = "CONNECTION_SYNCED"
