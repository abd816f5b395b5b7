package syncfy

// The catalogues: the documented sandbox sites (username "test", password "test"), a real-looking
// bank site with a validated username, and a Government site (documents only).

// Country and organization type ids (the types' are Syncfy's documented ones).
const (
	CountryMX      = "51ac8d3a4abc2c4f1c000000"
	TypeBank       = "56cf4f5b784806cf028b4568"
	TypeGovernment = "56cf4f5b784806cf028b4569"
	TypeUtility    = "57fed63a78480609038b4567"
	TypeWallet     = "57fed63a78480609038b4568"
	TypeBlockchain = "5b22dcac056f2905f94cdfe1"

	OrgSandbox = "56cbea4f784806cb028b4567"
	OrgBanorte = "56cbea4f784806cb028b4570"
	OrgSAT     = "56cbea4f784806cb028b4571"
)

// The sites' ids (the sandbox ones are Syncfy's documented ones).
const (
	SiteNormal        = "56cf5728784806f72b8b4568"
	SiteSelect        = "5ae37e06056f290607126261"
	SiteCodeResponse  = "5d0bb316f9de2a0a8f71aaf1"
	SiteToken         = "56cf5728784806f72b8b4569"
	SiteCaptcha       = "572ba390784806060f8b458b"
	SiteMultipleImage = "573ce20978480645038b4589"
	SiteMultipleText  = "58e28bce056f2903900d4d61"
	SiteBanorte       = "56cf5728784806f72b8b456e"
	SiteSAT           = "56cf5728784806f72b8b4580"
)

// The right answers.
const (
	Username = "test"
	Password = "test"
	// Token answers the Token (2FA) site.
	Token = "89704371"
	// Captcha answers the Captcha (2FA) site.
	Captcha = "test"
)

type country struct {
	ID   string `json:"id_country"`
	Name string `json:"name"`
	Code string `json:"code"`
}

type orgType struct {
	ID    string `json:"id_site_organization_type"`
	Name  string `json:"name"`
	Label string `json:"label"`
}

type organization struct {
	ID         string `json:"id_site_organization"`
	IDType     string `json:"id_site_organization_type"`
	IDCountry  string `json:"id_country"`
	Name       string `json:"name"`
	Avatar     string `json:"avatar"`
	SmallCover string `json:"small_cover"`
	Cover      string `json:"cover"`
}

type option struct {
	Label string `json:"label"`
	Value string `json:"value"`
	Image string `json:"imgBase64File,omitempty"`
}

type element struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Label      string   `json:"label"`
	Required   bool     `json:"required"`
	Username   bool     `json:"username"`
	Token      bool     `json:"token"`
	Validation *string  `json:"validation"`
	Options    []option `json:"options,omitempty"`
}

type site struct {
	ID         string    `json:"id_site"`
	IDOrg      string    `json:"id_site_organization"`
	IDType     string    `json:"id_site_organization_type"`
	IDSiteType string    `json:"id_site_type"`
	IsBusiness int       `json:"is_business"`
	IsPersonal int       `json:"is_personal"`
	Version    int       `json:"version"`
	Name       string    `json:"name"`
	Endpoint   string    `json:"endpoint"`
	Elements   []element `json:"credentials"`
}

var countries = []country{{ID: CountryMX, Name: "México", Code: "MX"}}

var orgTypes = []orgType{
	{TypeBank, "Bank", "Banco"},
	{TypeGovernment, "Government", "Gobierno"},
	{TypeUtility, "Utility", "Servicios"},
	{TypeWallet, "Digital Wallet", "Monedero digital"},
	{TypeBlockchain, "Blockchain", "Blockchain"},
}

var organizations = []organization{
	{ID: OrgSandbox, IDType: TypeBank, IDCountry: CountryMX, Name: "Sandbox", Avatar: "/images/sandbox/avatar.png", SmallCover: "/images/sandbox/small.png", Cover: "/images/sandbox/cover.png"},
	{ID: OrgBanorte, IDType: TypeBank, IDCountry: CountryMX, Name: "Banorte", Avatar: "/images/banorte/avatar.png", SmallCover: "/images/banorte/small.png", Cover: "/images/banorte/cover.png"},
	{ID: OrgSAT, IDType: TypeGovernment, IDCountry: CountryMX, Name: "SAT", Avatar: "/images/sat/avatar.png"},
}

func ptr(s string) *string { return &s }

func userPass() []element {
	return []element{
		{Name: "username", Type: "text", Label: "Usuario", Required: true, Username: true},
		{Name: "password", Type: "password", Label: "Contraseña", Required: true},
	}
}

func sandboxSite(id, name string, extra ...element) site {
	return site{ID: id, IDOrg: OrgSandbox, IDType: TypeBank, IDSiteType: "5b285177056f2911c13dbce1", IsPersonal: 1, IsBusiness: 1,
		Version: 1, Name: name, Endpoint: "/v1/credentials", Elements: append(userPass(), extra...)}
}

var sites = func() []site {
	code := sandboxSite(SiteCodeResponse, "Code Response Simulator (Simple Auth)")
	code.Elements[0].Validation = ptr(`^test(-[0-9]{3})?$`)
	code.Elements[0].Label = "Usuario (test-CÓDIGO)"
	return []site{
		sandboxSite(SiteNormal, "Normal (Simple Auth)"),
		sandboxSite(SiteSelect, "Select Input (Simple Auth)", element{
			Name: "account_kind", Type: "select", Label: "Tipo de cuenta", Required: true,
			Options: []option{{Label: "Personal", Value: "01"}, {Label: "Empresarial", Value: "02"}},
		}),
		code,
		sandboxSite(SiteToken, "Token (2FA)"),
		sandboxSite(SiteCaptcha, "Captcha (2FA)"),
		sandboxSite(SiteMultipleImage, "Multiple Image (2FA)"),
		sandboxSite(SiteMultipleText, "Multiple Text (2FA)"),
		{ID: SiteBanorte, IDOrg: OrgBanorte, IDType: TypeBank, IsPersonal: 1, Version: 1, Name: "Banorte Personal", Endpoint: "/v1/credentials",
			Elements: []element{
				{Name: "username", Type: "text", Label: "Tarjeta", Required: true, Username: true, Validation: ptr(`^[0-9]{16}$`)},
				{Name: "password", Type: "password", Label: "Contraseña", Required: true},
				{Name: "token", Type: "password", Label: "Token celular", Required: false, Token: true},
			}},
		{ID: SiteSAT, IDOrg: OrgSAT, IDType: TypeGovernment, IsPersonal: 1, IsBusiness: 1, Version: 1, Name: "SAT CIEC", Endpoint: "/v1/credentials",
			Elements: []element{
				{Name: "rfc", Type: "text", Label: "RFC", Required: true, Username: true, Validation: ptr(`^[A-Z&Ñ]{3,4}[0-9]{6}[A-Z0-9]{3}$`)},
				{Name: "password", Type: "password", Label: "CIEC", Required: true},
			}},
	}
}()

func siteByID(id string) (site, bool) {
	for _, s := range sites {
		if s.ID == id {
			return s, true
		}
	}
	return site{}, false
}
