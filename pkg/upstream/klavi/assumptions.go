package klavi

import "time"

// Every guess this package (and the simulator, which follows the same notes) makes about Klavi,
// in one place. Each quotes the "Unknowns" entry of the provider notes it settles; correct it
// here when Klavi's real behaviour is known.

const (
	// Paths, under the documented /data/v1 prefix.
	pathAuth           = "/data/v1/auth"
	pathRefresh        = "/data/v1/refresh"
	pathLinks          = "/data/v1/links"
	pathConsents       = "/data/v1/consents"
	pathPersonalReport = "/data/v1/personal/user-data"
	pathBusinessReport = "/data/v1/business/user-data"

	// PathInstitutions: "Exact institutions path in the 'link' doc space → treat
	// /data/v1/links/institutions as canonical; simulator also serves /data/v1/institutions."
	pathInstitutions = "/data/v1/links/institutions"
)

// DefaultTokenLifetime: "expireIn type → integer seconds" (and 1800 in every example); used when
// an answer carries no expireIn.
const DefaultTokenLifetime = 1800 * time.Second

// LinkTokenLifetime: "linkToken lifetime → 1800 s (from the single example)". A linkToken is
// used only right after its link is created, so it is never cached.
const LinkTokenLifetime = 1800 * time.Second

// ValidityPeriod asked for a consent: "validityPeriod (connect space: required, enum 0 =
// indefinite, 12 = 12 months)"; Puente asks for 12 months.
const ValidityPeriod = 12

// Consent statuses arrive in either case: "Consent status casing in JSON → simulator emits
// upper-case (AUTHORISED), with a switch for lower-case; adapter normalises." See NormStatus.

// Permission strings: "Permission string casing → ACCOUNTS_ALL etc. (Open Finance Brasil style)."
const (
	PermissionAccounts     = "ACCOUNTS_ALL"
	PermissionCreditCards  = "CREDIT_CARDS_ALL"
	PermissionRegistration = "REGISTRATION_ALL"
)

// EventProductFailed: "Webhook for report failures → product_generated_failed event with
// payload { linkId, productName, code, message }."
const EventProductFailed = "product_generated_failed"

// Event bodies: "Event body wrapper → always an array, even for one event." A body that is a
// JSON object is therefore a report (see IsReport).

// WebhookTolerance: "Whether X-Klavi-Timestamp should be checked → optional freshness window of
// 5 min; off by default." Config.WebhookTolerance turns it on.
const SuggestedWebhookTolerance = 5 * time.Minute

// Report-request answer: "Report-request response for institution-level calls → same as
// user-level: { requestId, message: ok }." Puente only makes user-level requests.

// MockInstitution: "Sandbox institutions and test users → … one mock institution
// institutionCode 999, name Mock Bank, … CPF 00000000191 forces REJECTED."
const (
	MockInstitution = "999"
	RejectedCPF     = "00000000191"
)

// Report products Puente asks for, by the user's kind: the checking-account report carries the
// accounts, balances and transactions Puente serves ("Product names (examples)").
var (
	PersonalProducts = []string{"pf_checking_account"}
	BusinessProducts = []string{"pj_checking_account"}
)
