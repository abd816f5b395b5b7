package boufin

import "time"

// Every guess this package (and the simulator in services/providersim/boufin) makes about
// Boufin Connect's wire, in one place. Boufin documents the flow (Token OTP → iframe → consentId →
// Task Token → product pulls, consent management) and the auth schemes (x-api-key, a JWT Task
// Token), but the bodies of its API reference could not be read: each constant below quotes the
// unknown it stands in for. Change them here when the real reference is at hand.

// Paths, relative to Config.URL.
const (
	// "Connect base URL → serve everything under one configurable base" (…/api/v1): Config.URL
	// holds the whole base, these paths follow it.

	// "Token OTP endpoint → POST /connect/token-otp, header x-api-key, body { personType, rut,
	// companyRut?, clientId }, response { token, consentId, expiresIn: 600 }".
	PathTokenOTP = "/connect/token-otp"
	// "Task Token endpoint → POST /connect/task-token, header x-api-key, body { target,
	// clientId }, response { token, expiresIn: 3600 }".
	PathTaskToken = "/connect/task-token"
	// "Consent endpoints → GET /connect/consents?page=1&limit=10 → { data: { items, page,
	// limit, total } }; GET /connect/consents/{consentId} → { data: Consent }; DELETE
	// /connect/consents/{consentId} to revoke".
	PathConsents = "/connect/consents"
	// "Extraction call → GET /connect/consents/{consentId}/products/{product} with the Task
	// Token; 202 {"status":"running"} while running, then 200 {"status":"done","data":{…}}".
	PathProductFmt = "/connect/consents/%s/products/%s"
	// "Entities & actions → GET (path not captured)" and "Institution catalogue → configured per
	// client": we read it from GET /connect/entities with x-api-key, answering { data: [Entity] }.
	PathEntities = "/connect/entities"
	// "appUrl is the Boufin Connect URL (per environment, supplied by Boufin)": when
	// Config.AppURL is empty, the app is at Config.URL + DefaultAppPath.
	DefaultAppPath = "/connect/app"
)

// Headers.
const (
	// "ApiKeyAuth: API key in header x-api-key" (documented). We send it on every server call,
	// Task Token calls included ("the x-api-key checked on every server call").
	HeaderAPIKey = "x-api-key"
)

// The hosted app, opened as a page instead of an iframe.
//
// Unknown: "Iframe completion message → { type: CONSENT_SUCCESS, payload: { consentId } }" —
// the real app receives the OTP by postMessage (AUTH_TOKEN) and answers by postMessage. Puente has
// no page of its own to host the iframe, so we assume the app, opened as a page, takes the OTP and
// where to return in its query, and sends the browser back with a redirect.
const (
	// AppParamToken carries the one-time OTP token (the AUTH_TOKEN payload).
	AppParamToken = "token"
	// AppParamRedirectURI is where the app sends the browser when the user is done.
	AppParamRedirectURI = "redirect_uri"
	// AppParamState is handed back untouched.
	AppParamState = "state"
	// CallbackParamConsentID names the consent on the way back (CONSENT_SUCCESS's consentId).
	CallbackParamConsentID = "consentId"
	// CallbackParamError carries CONSENT_ERROR's reason: "wrong_login" (the widget's word for bad
	// credentials), "cancelled" (CLOSE), or another.
	CallbackParamError = "error"
)

// Person types: "Token OTP … Incluye flujos para personas naturales y jurídicas" (documented);
// the values are ours.
const (
	PersonNatural = "natural"
	PersonLegal   = "legal"
)

// Lifetimes: "Token lifetimes → OTP 10 minutes and single use; Task Token 1 hour". The answers'
// expiresIn wins when present.
const (
	OTPLifetime       = 10 * time.Minute
	TaskTokenLifetime = time.Hour
)

// Product identifiers: "Connect product identifiers → unknown"; "snake/kebab slugs derived from
// the documented model names". Config overrides them.
const (
	DefaultProductAccounts     = "cuentas"
	DefaultProductTransactions = "movimientos"
	DefaultProductIdentity     = "validacion-identidad"
)

// ProductAccountQuery narrows a transactions pull to one account (our guess: Boufin documents
// "Movimiento" as a model, not how it is filtered). The adapter also filters the answer itself.
const ProductAccountQuery = "accountId"

// Product pull states ("while running answer 202 {status: running}, then 200 {status: done}";
// "wrong credentials → {status: wrong_login}", reusing the widget vocabulary).
const (
	ProductRunning    = "running"
	ProductPending    = "pending"
	ProductDone       = "done"
	ProductWrongLogin = "wrong_login"
	ProductError      = "error"
)

// Consent statuses: "Consent status enum → PENDING, ACTIVE, REVOKED, EXPIRED, ERROR. Treat
// unknown values as non-usable." ERROR carries errorCode "wrong_login" for bad credentials.
const (
	ConsentPending = "PENDING"
	ConsentActive  = "ACTIVE"
	ConsentRevoked = "REVOKED"
	ConsentExpired = "EXPIRED"
	ConsentError   = "ERROR"
)

// ErrorCodeWrongLogin is a failed consent's errorCode for bad credentials.
const ErrorCodeWrongLogin = "wrong_login"

// A product pull on a consent that is not ACTIVE: our guess is 409 {statusCode, message, code}
// with code CONSENT_<STATUS>; the adapter reads the consent itself to learn why.
const StatusConsentNotActive = 409

// Amounts: Boufin's models carry amounts as JSON numbers in the currency's unit ("salary
// (number, CLP)"); CLP has no minor unit. Exponents of the currencies a Chilean bank account may
// hold; another currency is a bad response.
var currencyExponent = map[string]int{"CLP": 0, "USD": 2, "EUR": 2, "CLF": 4}

// Target: "Task Token → target (end-user identifier)". We take the RUT the consent is about:
// the person's for a natural person, the company's for a legal one.
func Target(personType, rut, companyRut string) string {
	if personType == PersonLegal {
		return NormalizeRUT(companyRut)
	}
	return NormalizeRUT(rut)
}
