package boufin

// The simulator's own institutions and users.

// Default users' RUTs and the password every one of them accepts.
const (
	// NaturalRUT is a natural person with a checking account and a credit card.
	NaturalRUT = "11111111-1"
	// CompanyRUT is a company NaturalRUT represents, with a business checking account.
	CompanyRUT = "76086428-5"
	// StrangerRUT has no data at any bank: logins with it fail wrong_login.
	StrangerRUT = "22222222-2"
	// Password is any default user's password (anything but Options.WrongPassword works).
	Password = "clave-buena"
)

// DefaultEntities are three Chilean banks.
func DefaultEntities() []Entity {
	both := []string{"natural", "legal"}
	prods := []string{"cuentas", "movimientos", "validacion-identidad"}
	return []Entity{
		{EntityID: "banco-andes", Name: "Banco de los Andes", Type: "bank", PersonTypes: both, Products: prods, Status: "operational"},
		{EntityID: "banco-pacifico-sur", Name: "Banco Pacífico Sur", Type: "bank", PersonTypes: both, Products: prods, Status: "operational"},
		{EntityID: "cooperativa-austral", Name: "Cooperativa Austral", Type: "bank", PersonTypes: []string{"natural"}, Products: prods, Status: "degraded"},
	}
}

// DefaultUsers are a natural person and a company they represent.
func DefaultUsers() []User {
	return []User{
		{
			RUT: NaturalRUT, Name: "María José Pérez Soto", Email: "mjperez@example.cl", Phone: "+56912345678",
			Accounts: []Account{
				{ID: "cta-0001", Type: "cuenta-corriente", Number: "00-123-45678-9", Name: "Cuenta Corriente", Currency: "CLP",
					Current: 1254300, Available: 1204300, From: "2026-09-01", To: "2026-09-30",
					Movements: []Movement{
						{ID: "mov-0001", Date: "2026-09-30", Description: "Remuneración Septiembre", Counterparty: "Empresa Ejemplo SpA", Amount: 1850000},
						{ID: "mov-0002", Date: "2026-09-28", Description: "Compra Supermercado Líder", Counterparty: "Líder", Amount: -45990},
						{ID: "mov-0003", Date: "2026-09-25", Description: "Transferencia a Juan Soto", Amount: -120000},
						{ID: "mov-0004", Date: "2026-09-20", Description: "Pago Cuenta Luz Enel", Counterparty: "Enel", Amount: -32450},
						{ID: "mov-0005", Date: "2026-09-30", Description: "Compra Copec", Counterparty: "Copec", Amount: -25000, Pending: true},
					}},
				{ID: "tc-0001", Type: "tarjeta-credito", Number: "XXXX-XXXX-XXXX-4321", Name: "Tarjeta Visa", Currency: "CLP",
					Current: -345000, Available: 1655000, Limit: 2000000, From: "2026-09-01", To: "2026-09-30",
					Movements: []Movement{
						{ID: "mov-1001", Date: "2026-09-15", Description: "Falabella", Counterparty: "Falabella", Amount: -299000},
						{ID: "mov-1002", Date: "2026-09-10", Description: "Netflix", Counterparty: "Netflix", Amount: -46000},
					}},
			},
		},
		{
			RUT: CompanyRUT, Name: "Comercial Los Aromos SpA", Legal: true, Representatives: []string{NaturalRUT}, Email: "finanzas@aromos.cl",
			Accounts: []Account{
				{ID: "cte-9001", Type: "cuenta-corriente", Number: "00-987-65432-1", Name: "Cuenta Corriente Empresa", Currency: "CLP",
					Current: 48500000, Available: 48500000, From: "2026-09-01", To: "2026-09-30",
					Movements: []Movement{
						{ID: "mov-9001", Date: "2026-09-29", Description: "Pago factura 1234", Counterparty: "Distribuidora Norte Ltda", Amount: 3570000},
						{ID: "mov-9002", Date: "2026-09-27", Description: "Pago proveedores", Amount: -1250000},
						{ID: "mov-9003", Date: "2026-09-26", Description: "Pago IVA SII", Counterparty: "Tesorería General", Amount: -890000},
					}},
			},
		},
	}
}
