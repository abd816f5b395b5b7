package sandboxdata

import (
	"fmt"
	"strconv"
	"strings"
)

// merchant is a shop as the enriched feed names it, with the category it files purchases under.
type merchant struct{ name, category string }

// profile is how one country's bank looks: amounts in minor units of its currency, its shops, its
// wording and its people.
type profile struct {
	country  string // ISO 3166 alpha-2
	currency string // ISO 4217
	salary   [2]int64
	purchase [2]int64
	balance  [2]int64 // the checking account's balance before the window's transactions
	limit    int64

	merchants           []merchant
	checking, card      string
	salaryDescription   string
	transferDescription string
	cardPayment         string
	// rawPurchase starts the raw description of a card purchase, before the card's mask and the
	// shop's name in capitals without accents.
	rawPurchase string

	taxIDType   string
	firstNames  []string
	surnames    []string
	twoSurnames bool   // the Iberian naming: paternal and maternal surname
	phone       string // E.164 prefix of an 8-digit mobile number
	streets     []string
	address     func(street string, number int64) string
	city        string
	region      string
	postalCode  func(r rng) string
}

var profiles = []profile{
	{
		country: "CL", currency: "CLP",
		salary: [2]int64{750_000, 1_100_000}, purchase: [2]int64{1_500, 85_000},
		balance: [2]int64{150_000, 2_500_000}, limit: 2_000_000,
		merchants: []merchant{
			{"Supermercado Lider", "GROCERIES"}, {"Copec", "FUEL"}, {"Farmacias Ahumada", "HEALTH"},
			{"Uber Eats", "RESTAURANTS"}, {"Metro de Santiago", "TRANSPORT"}, {"Falabella", "SHOPPING"},
			{"Netflix", "ENTERTAINMENT"}, {"Enel Distribución", "UTILITIES"},
		},
		checking: "Cuenta Corriente", card: "Tarjeta de Crédito Visa",
		salaryDescription: "Remuneraciones", transferDescription: "Transferencia a terceros", cardPayment: "Pago tarjeta de crédito",
		rawPurchase: "COMPRA POS",
		taxIDType:   "RUT",
		firstNames:  []string{"Camila", "Valentina", "Javiera", "Catalina", "Francisca", "Sofía", "Benjamín", "Matías", "Sebastián", "Tomás", "Joaquín", "Diego"},
		surnames:    []string{"González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez", "Sepúlveda", "Morales", "Fuentes"},
		twoSurnames: true,
		phone:       "+569",
		streets:     []string{"Av. Providencia", "Av. Apoquindo", "Huérfanos", "Av. Vicuña Mackenna", "Av. Irarrázaval"},
		address:     func(s string, n int64) string { return fmt.Sprintf("%s %d", s, n) },
		city:        "Santiago", region: "RM",
		postalCode: func(r rng) string { return strconv.FormatInt(r.between(7_500_000, 8_399_999), 10) },
	},
	{
		country: "MX", currency: "MXN",
		salary: [2]int64{1_400_000, 2_600_000}, purchase: [2]int64{3_500, 250_000},
		balance: [2]int64{300_000, 6_000_000}, limit: 5_000_000,
		merchants: []merchant{
			{"OXXO", "GROCERIES"}, {"Walmart", "GROCERIES"}, {"Pemex", "FUEL"}, {"Liverpool", "SHOPPING"},
			{"Rappi", "RESTAURANTS"}, {"CFE", "UTILITIES"}, {"Telmex", "UTILITIES"}, {"Spotify", "ENTERTAINMENT"},
		},
		checking: "Cuenta de Cheques", card: "Tarjeta de Crédito Oro",
		salaryDescription: "Nómina", transferDescription: "SPEI enviado", cardPayment: "Pago a tarjeta",
		rawPurchase: "COMPRA POS",
		taxIDType:   "RFC",
		firstNames:  []string{"María", "Guadalupe", "Fernanda", "Daniela", "Ximena", "Andrea", "José", "Juan", "Luis", "Carlos", "Alejandro", "Miguel"},
		surnames:    []string{"Hernández", "García", "Martínez", "López", "González", "Rodríguez", "Pérez", "Sánchez", "Ramírez", "Cruz", "Flores", "Gómez"},
		twoSurnames: true,
		phone:       "+5255",
		streets:     []string{"Av. Insurgentes Sur", "Paseo de la Reforma", "Calle Durango", "Av. Revolución", "Calle Amsterdam"},
		address:     func(s string, n int64) string { return fmt.Sprintf("%s %d", s, n) },
		city:        "Ciudad de México", region: "CMX",
		postalCode: func(r rng) string { return fmt.Sprintf("%05d", r.between(1_000, 16_999)) },
	},
	{
		country: "BR", currency: "BRL",
		salary: [2]int64{250_000, 600_000}, purchase: [2]int64{900, 60_000},
		balance: [2]int64{50_000, 1_500_000}, limit: 1_200_000,
		merchants: []merchant{
			{"Pão de Açúcar", "GROCERIES"}, {"iFood", "RESTAURANTS"}, {"Posto Ipiranga", "FUEL"}, {"Drogasil", "HEALTH"},
			{"Magazine Luiza", "SHOPPING"}, {"99 Táxi", "TRANSPORT"}, {"Vivo", "UTILITIES"}, {"Netflix", "ENTERTAINMENT"},
		},
		checking: "Conta Corrente", card: "Cartão de Crédito Platinum",
		salaryDescription: "Salário", transferDescription: "Pix enviado", cardPayment: "Pagamento de fatura",
		rawPurchase: "COMPRA CARTAO",
		taxIDType:   "CPF",
		firstNames:  []string{"Ana", "Beatriz", "Juliana", "Fernanda", "Larissa", "Camila", "João", "Pedro", "Lucas", "Gabriel", "Rafael", "Mateus"},
		surnames:    []string{"Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Ferreira", "Costa", "Rodrigues", "Almeida", "Carvalho", "Gomes"},
		twoSurnames: true,
		phone:       "+55119",
		streets:     []string{"Rua Augusta", "Avenida Paulista", "Rua da Consolação", "Rua Oscar Freire", "Alameda Santos"},
		address:     func(s string, n int64) string { return fmt.Sprintf("%s, %d", s, n) },
		city:        "São Paulo", region: "SP",
		postalCode: func(r rng) string { return fmt.Sprintf("%05d-%03d", r.between(1_000, 5_999), r.between(0, 999)) },
	},
	{
		country: "FR", currency: "EUR",
		salary: [2]int64{120_000, 260_000}, purchase: [2]int64{250, 18_000},
		balance: [2]int64{30_000, 900_000}, limit: 400_000,
		merchants: []merchant{
			{"Carrefour", "GROCERIES"}, {"SNCF", "TRANSPORT"}, {"Monoprix", "GROCERIES"}, {"Fnac", "SHOPPING"},
			{"Boulangerie Paul", "RESTAURANTS"}, {"TotalEnergies", "FUEL"}, {"Free Mobile", "UTILITIES"}, {"Deezer", "ENTERTAINMENT"},
		},
		checking: "Compte Courant", card: "Carte Visa Premier",
		salaryDescription: "Virement salaire", transferDescription: "Virement émis", cardPayment: "Prélèvement carte",
		rawPurchase: "PAIEMENT CB",
		firstNames:  []string{"Camille", "Léa", "Manon", "Chloé", "Inès", "Emma", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules"},
		surnames:    []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent"},
		phone:       "+336",
		streets:     []string{"Rue de Rivoli", "Boulevard Haussmann", "Rue du Faubourg Saint-Antoine", "Avenue de la République", "Rue de la Roquette"},
		address:     func(s string, n int64) string { return fmt.Sprintf("%d %s", n, s) },
		city:        "Paris", region: "IDF",
		postalCode: func(r rng) string { return fmt.Sprintf("750%02d", r.between(1, 20)) },
	},
}

// identity draws the holder of seed's accounts in prof's country. It has its own generator, so
// that it is the same whatever day is and changing it cannot move the transactions.
func identity(seed string, prof *profile) Identity {
	r := newRNG("sandbox/identity", seed)
	first := prof.firstNames[r.intn(len(prof.firstNames))]
	i := r.intn(len(prof.surnames))
	paternal := prof.surnames[i]
	maternal := prof.surnames[(i+1+r.intn(len(prof.surnames)-1))%len(prof.surnames)]
	name := first + " " + paternal
	if prof.twoSurnames {
		name += " " + maternal
	}

	id := Identity{
		Names:     []string{name},
		TaxIDType: prof.taxIDType,
		Emails: []string{fmt.Sprintf("%s.%s%02d@example.com",
			emailPart(first), emailPart(paternal), r.intn(100))},
		Phones: []string{fmt.Sprintf("%s%08d", prof.phone, r.between(10_000_000, 99_999_999))},
	}
	street := prof.streets[r.intn(len(prof.streets))]
	number := r.between(10, 4_999)
	id.Addresses = []Address{{
		Street:     prof.address(street, number),
		City:       prof.city,
		Region:     prof.region,
		PostalCode: prof.postalCode(r),
		Country:    prof.country,
	}}
	switch prof.taxIDType {
	case "RUT":
		id.TaxID = rut(r.between(8_000_000, 24_999_999))
	case "CPF":
		var digits [9]int
		for i := range digits {
			digits[i] = r.intn(10)
		}
		id.TaxID = cpf(digits)
	case "RFC":
		year, month, day := 1965+r.intn(38), 1+r.intn(12), 1+r.intn(28)
		const homoclave = "123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
		hc := string([]byte{homoclave[r.intn(len(homoclave))], homoclave[r.intn(len(homoclave))]})
		id.TaxID = rfc(first, paternal, maternal, year, month, day, hc)
	}
	return id
}

// emailPart is name as it goes into an e-mail address: lower case, no accents, letters only.
func emailPart(name string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' {
			return c
		}
		return -1
	}, strings.ToLower(fold(name)))
}

// rut formats a Chilean RUT body with dots and its modulo-11 check digit: 12.345.678-5.
func rut(body int64) string {
	sum, weight := int64(0), int64(2)
	for n := body; n > 0; n /= 10 {
		sum += n % 10 * weight
		if weight++; weight > 7 {
			weight = 2
		}
	}
	check := "0"
	switch d := 11 - sum%11; d {
	case 11:
	case 10:
		check = "K"
	default:
		check = strconv.FormatInt(d, 10)
	}
	digits := strconv.FormatInt(body, 10)
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(c)
	}
	return b.String() + "-" + check
}

// cpf returns the 11 digits of the Brazilian CPF whose first nine are digits, with both check
// digits. Nine equal digits make a CPF that validators reject, so the last is changed.
func cpf(digits [9]int) string {
	d := digits[:]
	if digits == [9]int{d[0], d[0], d[0], d[0], d[0], d[0], d[0], d[0], d[0]} {
		d[8] = (d[8] + 1) % 10
	}
	for len(d) < 11 {
		sum := 0
		for i, v := range d {
			sum += v * (len(d) + 1 - i)
		}
		check := 11 - sum%11
		if check >= 10 {
			check = 0
		}
		d = append(d, check)
	}
	var b strings.Builder
	for _, v := range d {
		b.WriteByte(byte('0' + v))
	}
	return b.String()
}

// rfcBadWords are the SAT's inconvenient words: an RFC would start with one, so its fourth letter
// becomes X.
var rfcBadWords = map[string]bool{
	"BUEI": true, "BUEY": true, "CACA": true, "CACO": true, "CAGA": true, "CAGO": true, "CAKA": true,
	"CAKO": true, "COGE": true, "COJA": true, "COJE": true, "COJI": true, "COJO": true, "CULO": true,
	"FETO": true, "GUEY": true, "JOTO": true, "KACA": true, "KACO": true, "KAGA": true, "KAGO": true,
	"KOGE": true, "KOJO": true, "KAKA": true, "KULO": true, "MAME": true, "MAMO": true, "MEAR": true,
	"MEAS": true, "MEON": true, "MION": true, "MOCO": true, "MULA": true, "PEDA": true, "PEDO": true,
	"PENE": true, "PUTA": true, "PUTO": true, "QULO": true, "RATA": true, "RUIN": true,
}

// rfc builds a person's Mexican RFC the way the SAT does (simplified for the names used here):
// four letters from the names, the birth date YYMMDD, a two-character homoclave and the check
// digit.
func rfc(first, paternal, maternal string, year, month, day int, homoclave string) string {
	up := func(s string) string { return strings.ToUpper(fold(s)) }
	p, m, n := up(paternal), up(maternal), up(first)
	vowel := byte('X')
	if i := strings.IndexAny(p[1:], "AEIOU"); i >= 0 {
		vowel = p[1+i]
	}
	letters := string([]byte{p[0], vowel, m[0], n[0]})
	if rfcBadWords[letters] {
		letters = letters[:3] + "X"
	}
	s := fmt.Sprintf("%s%02d%02d%02d%s", letters, year%100, month, day, homoclave)
	return s + rfcCheckDigit(s)
}

// rfcCheckDigit is the SAT's modulo-11 check digit of the first 12 characters of an RFC.
func rfcCheckDigit(s string) string {
	const values = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ "
	sum := 0
	for i := range 12 {
		sum += strings.IndexByte(values, s[i]) * (13 - i)
	}
	switch rem := sum % 11; rem {
	case 0:
		return "0"
	case 1:
		return "A"
	default:
		return strconv.Itoa(11 - rem)
	}
}
