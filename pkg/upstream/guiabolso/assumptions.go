package guiabolso

import "time"

// Every guess this integration relies on, in one place. Each quotes the "Unknowns" entry of the
// provider notes it answers; everything else follows Guiabolso's published pages and the
// official connector (guiabolso-connector) and events-protocol sources.

const (
	// Routes of the event protocol (documented: kasbah partner.route and user.route).
	PartnerRoute = "/partner/events/"
	UserRoute    = "/gbConnect/events/"

	// DefaultConnectPath is where the simulator (and a self-hosted page) serves the Connect page.
	// The real page is https://connect.guiabolso.com.br/#/integracao, a fragment route a server
	// never sees; the path form is ours.
	DefaultConnectPath = "/integracao"
)

// Event names.
const (
	EventTokensExchange  = "oauth:tokens:exchange"        // documented
	EventRefreshExchange = "oauth:refresh:token:exchange" // documented (request name)
	EventSyncAccounts    = "gbconnect:sync:accounts"      // documented
	EventSyncFinished    = "gbconnect:user:sync:accounts:finished"
	EventUserNotFound    = "gbconnect:user:notFound"

	// Unknown 4: "Names of user-data events (accounts, transactions, variables) → simulator
	// implements gbconnect:user:accounts v1 → { "accounts": [ {accountId, bacenCode, name,
	// balance} ] } and gbconnect:user:transactions v1 → { "transactions": [ {id, accountId, date,
	// description, amount} ] }". We also send {"accountId": n} to narrow transactions to one
	// account, and read balance and amount as decimal reais (BRL), date as YYYY-MM-DD.
	EventUserAccounts     = "gbconnect:user:accounts"
	EventUserTransactions = "gbconnect:user:transactions"
)

// Unknown 2: "Refresh response name → oauth:refresh:token:exchange:response" — the usual
// "<name>:response", which is what Call reads for every event.

// Token lifetimes. Documented: oauthcode 60 minutes, accessToken 30 minutes, and the connector
// refreshes when fewer than 30 s remain. Unknown 3: "Refresh-token lifetime → 30 days".
// The tokens are JWTs; we read their "exp" claim (unverified, as the connector does) and fall
// back to these lifetimes when a token has none.
const (
	CodeLifetime         = 60 * time.Minute
	AccessTokenLifetime  = 30 * time.Minute
	RefreshTokenLifetime = 30 * 24 * time.Hour
	RefreshEarly         = 30 * time.Second
)

// Unknown 5: "Callback URL query parameter carrying the code → ?code=<oauthcode> (the
// front-end event uses oauthcode; accept both)".
var CallbackCodeParams = []string{"code", "oauthcode"}

// Unknown 1: "HTTP status of event responses → always HTTP 200 with the outcome in the event
// name ... Make a switch to return 4xx/5xx for error events." The client reads the name of any
// answer that is an event, whatever its status.

// Unknown 8: "Error codes inside error payloads → { "code": "INVALID_CREDENTIALS" } for bad
// clientSecret (:unauthorized), EXPIRED_CODE for old authorization codes (:expired),
// MISSING_REQUIRED_PARAMETER (:badRequest)." We add INVALID_CODE (:unauthorized) for a code that
// is unknown or already used, INVALID_TOKEN (:unauthorized) for a refused access token and
// EXPIRED_TOKEN (:expired) for an expired refresh token.
const (
	CodeInvalidCredentials = "INVALID_CREDENTIALS"
	CodeExpiredCode        = "EXPIRED_CODE"
	CodeInvalidCode        = "INVALID_CODE"
	CodeInvalidToken       = "INVALID_TOKEN"
	CodeExpiredToken       = "EXPIRED_TOKEN"
	CodeMissingParameter   = "MISSING_REQUIRED_PARAMETER"
	CodeTooManyIDs         = "TOO_MANY_USER_TRACKING_IDS"
)

// Unknown 9: "Behaviour above 5,000 ids → gbconnect:sync:accounts:badRequest". The client
// refuses such a batch before sending it.
const MaxSyncBatch = 5000

// DefaultProducerTag is the documented default of producerTag.
const DefaultProducerTag = "DEFAULT"

// DefaultRatePerSecond: Guiabolso publishes no rate limit; we stay modest.
const DefaultRatePerSecond = 10

// Unknown 6 ("Webhook retries → 3 retries ... on non-2xx") and Unknown 7 ("send
// X-GBC-Signature-256; optional switch to send the literal HTTP_X_GBC_SIGNATURE_256") concern
// the sender: the simulator follows them, and the inbound scheme reads both header names.

// Unknown 10: "the sandbox userTrackingId is always development" — only the browser script's
// sandbox environment does that; Puente sends its own ids, and the simulator keeps a user
// "development".
const SandboxUserTrackingID = "development"
