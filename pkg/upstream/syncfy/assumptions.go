package syncfy

import "time"

// Every guess this package and its adapters rely on, in one place. Each quotes the "Unknown" of
// the provider notes it answers; the rest of the code refers to these names only.

// SessionIdleLifetime is how long a session token lives after its last use.
// Unknown 5, "Session token exact lifetime rules → 5 minutes sliding window (documented) and no
// absolute cap (guess)". We do not track each use: a token is replaced SessionRefreshEarly before
// five minutes from its creation, which is inside the window whatever the use.
const (
	SessionIdleLifetime = 5 * time.Minute
	SessionRefreshEarly = time.Minute
)

// RatePerSecond is Syncfy's documented limit ("5 requests per second per server").
const RatePerSecond = 5

// ChallengeWindow is how long a user has to answer a 410 WaitingTwofa before Syncfy ends the job
// 411 TwofaTimeout. Syncfy does not document it (not even in Unknowns): we assume five minutes,
// the same as a session's idle lifetime.
const ChallengeWindow = 5 * time.Minute

// PollAfter is how long the connection service waits between two reads of a job's status.
// Syncfy documents none (its own widget follows a WebSocket); a job takes seconds.
const PollAfter = time.Second

// Unknown 4, "Which host is canonical → simulator accepts any host; returned status/twofa/ws URLs
// point back to the simulator". The absolute status and twofa URLs a job returns are followed
// when their host is the API's own host; any other host gets only the URL's path, on the API's
// host, so that a session token is never sent elsewhere.

// Unknown 9, "Job history order → oldest first": the LAST entry of a job's status history is
// where the job stands.

// Unknown 7, "Code Response Simulator sandbox site → username selects the code, e.g. username
// test-401 ends in 401; default 200" (simulator only).

// Unknown 8, "2FA answers for Multiple Image / Multiple Text / QR / Confirm Login sandbox sites →
// accept any non-empty value" (simulator only).

// Unknown 10, "Token format → 64 lowercase hex chars" (simulator only; the client treats tokens
// as opaque).

// TwofaImagePrefix: a twofa element's imgBase64File is assumed to be base64 PNG bytes, possibly
// behind a data-URL prefix ("data:image/png;base64,"), which ImageBase64 strips. The shape of an
// "options" element's options is not documented either: we assume [{value, label,
// imgBase64File}], as the twofa element itself is described.

// Catalogues are read with the API key (the seed: "Es necesario añadir un token de sesión
// (?token=TOKEN) o el api key (?api_key=API_KEY)"): the catalog belongs to no end user. The
// key is sent in the Authorization header, as for users and sessions, never in the URL.

// CataloguePage is the page size catalogues are read with (skip/limit paging, no documented cap).
const CataloguePage = 500

// DataPage is the page size of accounts and transactions (webhook-supplied links use 5000).
const DataPage = 500

// LinkedOrganizationTypes are the organization types whose sites hold bank accounts: the
// Government (SAT) and Utility sites hold documents, which Puente does not extract.
var LinkedOrganizationTypes = []string{"Bank", "Digital Wallet", "Blockchain"}
