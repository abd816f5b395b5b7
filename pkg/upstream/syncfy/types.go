package syncfy

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Envelope wraps every Syncfy answer, success or error.
type Envelope struct {
	RID      string          `json:"rid"`
	Code     int             `json:"code"`
	Errors   json.RawMessage `json:"errors"`
	Status   bool            `json:"status"`
	Message  *string         `json:"message"`
	Response json.RawMessage `json:"response"`
}

// User is a Syncfy end user.
type User struct {
	IDUser     string  `json:"id_user"`
	IDExternal *string `json:"id_external"`
	Name       string  `json:"name"`
	DtCreate   int64   `json:"dt_create"`
}

// Session is POST /v1/sessions's answer.
type Session struct {
	Token string `json:"token"`
}

// Country is an entry of /v1/catalogues/countries.
type Country struct {
	IDCountry string `json:"id_country"`
	Name      string `json:"name"`
	Code      string `json:"code"`
}

// OrganizationType is an entry of /v1/catalogues/site_organization_types.
type OrganizationType struct {
	ID    string `json:"id_site_organization_type"`
	Name  string `json:"name"`
	Label string `json:"label"`
}

// Organization groups sites.
type Organization struct {
	ID         string `json:"id_site_organization"`
	IDType     string `json:"id_site_organization_type"`
	IDCountry  string `json:"id_country"`
	Name       string `json:"name"`
	Avatar     string `json:"avatar"`
	SmallCover string `json:"small_cover"`
	Cover      string `json:"cover"`
}

// Site is where credentials log in.
type Site struct {
	ID             string        `json:"id_site"`
	IDOrganization string        `json:"id_site_organization"`
	IDType         string        `json:"id_site_organization_type"`
	IsBusiness     Flag          `json:"is_business"`
	IsPersonal     Flag          `json:"is_personal"`
	Name           string        `json:"name"`
	Credentials    []AuthElement `json:"credentials"`
}

// AuthElement is one input of a site's credentials form.
type AuthElement struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"` // text, password, select
	Label      string   `json:"label"`
	Required   bool     `json:"required"`
	Username   bool     `json:"username"`
	Token      bool     `json:"token"`
	Validation *string  `json:"validation,omitempty"`
	Options    []Option `json:"options,omitempty"`
}

// Option is a choice of a select element or of an "options" twofa element.
type Option struct {
	Label         string `json:"label"`
	Value         string `json:"value"`
	ImgBase64File string `json:"imgBase64File,omitempty"`
}

// CredentialJob is POST /v1/credentials's answer.
type CredentialJob struct {
	IDCredential string `json:"id_credential"`
	IDJob        string `json:"id_job"`
	IDJobUUID    string `json:"id_job_uuid,omitempty"`
	IsNew        Flag   `json:"is_new"`
	Username     string `json:"username"`
	WS           string `json:"ws"`
	Status       string `json:"status"`
	Twofa        string `json:"twofa"`
}

// JobStatus is one entry of a job's status history.
type JobStatus struct {
	Code    int            `json:"code"`
	Address string         `json:"address,omitempty"`
	Twofa   []TwofaElement `json:"twofa,omitempty"`
}

// TwofaElement is one question of a 410.
type TwofaElement struct {
	Name          string   `json:"name"`
	Type          string   `json:"type"` // text, password, options
	Label         string   `json:"label"`
	ImgBase64File string   `json:"imgBase64File,omitempty"`
	ImgURL        string   `json:"imgURL,omitempty"`
	Options       []Option `json:"options,omitempty"`
}

// Account is an account read through a credential.
type Account struct {
	IDAccount     string  `json:"id_account"`
	IDAccountType string  `json:"id_account_type"`
	IDCredential  string  `json:"id_credential"`
	IDSite        string  `json:"id_site"`
	IsDisable     Flag    `json:"is_disable"`
	Name          string  `json:"name"`
	Number        *string `json:"number"`
	Balance       float64 `json:"balance"`
	Currency      string  `json:"currency"`
	AccountType   string  `json:"account_type"`
	DtRefresh     int64   `json:"dt_refresh"`
}

// Transaction is a movement of an account.
type Transaction struct {
	IDTransaction string  `json:"id_transaction"`
	IDAccount     string  `json:"id_account"`
	IsDisable     Flag    `json:"is_disable"`
	IsDeleted     Flag    `json:"is_deleted"`
	IsPending     Flag    `json:"is_pending"`
	Description   string  `json:"description"`
	Amount        float64 `json:"amount"`
	Currency      string  `json:"currency"`
	Reference     *string `json:"reference"`
	DtTransaction int64   `json:"dt_transaction"`
	DtRefresh     int64   `json:"dt_refresh"`
}

// Flag is one of Syncfy's is_* flags: 0/1 in the API, true/false in some samples.
type Flag bool

func (f *Flag) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "1", "true":
		*f = true
	case "0", "false", "null", "":
		*f = false
	default:
		var n float64
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = n != 0
	}
	return nil
}

func (f Flag) MarshalJSON() ([]byte, error) {
	if f {
		return []byte("1"), nil
	}
	return []byte("0"), nil
}

// ImageBase64 is an imgBase64File without any data-URL prefix (see assumptions.go).
func ImageBase64(s string) string {
	if i := strings.Index(s, ";base64,"); i >= 0 && strings.HasPrefix(s, "data:") {
		return s[i+len(";base64,"):]
	}
	return s
}

// MinorUnits converts an amount in major units (as Syncfy sends them, a JSON number) to minor
// units. It works on the number's shortest decimal form, the digits Syncfy wrote, so that no float
// error creeps in (0.29 is 0.28999… as a float); digits past the minor unit round half away from
// zero.
func MinorUnits(amount float64, currency string) int64 {
	decimals := 2
	switch strings.ToUpper(currency) {
	case "CLP", "JPY", "KRW", "PYG":
		decimals = 0
	}
	neg := amount < 0
	digits := strconv.FormatFloat(math.Abs(amount), 'f', -1, 64)
	whole, frac, _ := strings.Cut(digits, ".")
	frac += strings.Repeat("0", decimals+1)
	n, err := strconv.ParseInt(whole+frac[:decimals], 10, 64)
	if err != nil { // beyond int64: no real balance
		n = math.MaxInt64
	}
	if frac[decimals] >= '5' && n < math.MaxInt64 {
		n++
	}
	if neg {
		return -n
	}
	return n
}
