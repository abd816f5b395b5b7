package extraction

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
)

// GRPC serves the service's gRPC API: proto ⇄ domain translation only.
type GRPC struct {
	extractionv1.UnimplementedExtractionServiceServer
	svc *Service
}

var _ extractionv1.ExtractionServiceServer = (*GRPC)(nil)

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// Register adds the service's API to s.
func (g *GRPC) Register(s grpc.ServiceRegistrar) { extractionv1.RegisterExtractionServiceServer(s, g) }

// idempotent runs create once per request_id of the calling client and method.
func idempotent[T proto.Message](ctx context.Context, g *GRPC, method, requestID string, req proto.Message, create func(*Service) (T, error)) (T, error) {
	var zero T
	p := caller.From(ctx)
	if p.ClientID == "" {
		return zero, fmt.Errorf("idempotent %s: no client to scope request_id to", method)
	}
	return idempotency.Call(ctx, g.svc.Idempotent, p.ClientID+":"+method, requestID, req, create)
}

func (g *GRPC) CreateExtraction(ctx context.Context, req *extractionv1.CreateExtractionRequest) (*extractionv1.CreateExtractionResponse, error) {
	return idempotent(ctx, g, "CreateExtraction", req.GetRequestId(), req, func(s *Service) (*extractionv1.CreateExtractionResponse, error) {
		e, err := s.CreateExtraction(ctx, caller.From(ctx), req.GetConsentId(), req.GetProduct())
		if err != nil {
			return nil, err
		}
		return &extractionv1.CreateExtractionResponse{Extraction: extractionProto(e)}, nil
	})
}

func (g *GRPC) GetExtraction(ctx context.Context, req *extractionv1.GetExtractionRequest) (*extractionv1.GetExtractionResponse, error) {
	e, err := g.svc.GetExtraction(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &extractionv1.GetExtractionResponse{Extraction: extractionProto(e)}, nil
}

func (g *GRPC) ListAccounts(ctx context.Context, req *extractionv1.ListAccountsRequest) (*extractionv1.ListAccountsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "acc")
	if err != nil {
		return nil, err
	}
	accs, err := g.svc.ListAccounts(ctx, caller.From(ctx), req.GetConsentId(), req.GetUserId(), p)
	if err != nil {
		return nil, err
	}
	resp := &extractionv1.ListAccountsResponse{Accounts: make([]*extractionv1.Account, 0, len(accs))}
	for _, a := range accs {
		resp.Accounts = append(resp.Accounts, accountProto(a))
	}
	if len(accs) == p.Limit {
		resp.NextPageToken = page.Token(accs[len(accs)-1].ID)
	}
	return resp, nil
}

func (g *GRPC) GetAccount(ctx context.Context, req *extractionv1.GetAccountRequest) (*extractionv1.GetAccountResponse, error) {
	a, err := g.svc.GetAccount(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &extractionv1.GetAccountResponse{Account: accountProto(a)}, nil
}

func (g *GRPC) ListTransactions(ctx context.Context, req *extractionv1.ListTransactionsRequest) (*extractionv1.ListTransactionsResponse, error) {
	p, err := decodeTransactionPage(req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	ts, err := g.svc.ListTransactions(ctx, caller.From(ctx), req.GetAccountId(), TransactionFilter{From: req.GetFromDate(), To: req.GetToDate()}, p)
	if err != nil {
		return nil, err
	}
	resp := &extractionv1.ListTransactionsResponse{Transactions: transactionsProto(ts)}
	if len(ts) == p.Limit {
		resp.NextPageToken = encodeTransactionPage(ts[len(ts)-1])
	}
	return resp, nil
}

func (g *GRPC) SyncTransactions(ctx context.Context, req *extractionv1.SyncTransactionsRequest) (*extractionv1.SyncTransactionsResponse, error) {
	r, err := g.svc.SyncTransactions(ctx, caller.From(ctx), req.GetConsentId(), req.GetCursor(), int(req.GetCount()))
	if err != nil {
		return nil, err
	}
	resp := &extractionv1.SyncTransactionsResponse{
		Added: transactionsProto(r.Added), Modified: transactionsProto(r.Modified),
		Removed: make([]*extractionv1.RemovedTransaction, 0, len(r.Removed)), NextCursor: r.NextCursor, HasMore: r.HasMore,
	}
	for _, t := range r.Removed {
		resp.Removed = append(resp.Removed, &extractionv1.RemovedTransaction{Id: t.ID, AccountId: t.AccountID})
	}
	return resp, nil
}

func (g *GRPC) GetIdentity(ctx context.Context, req *extractionv1.GetIdentityRequest) (*extractionv1.GetIdentityResponse, error) {
	id, err := g.svc.GetIdentity(ctx, caller.From(ctx), req.GetConsentId())
	if err != nil {
		return nil, err
	}
	out := &extractionv1.Identity{
		ConsentId: req.GetConsentId(), Names: id.Names, TaxIdType: id.TaxIDType, TaxId: id.TaxID,
		Emails: id.Emails, Phones: id.Phones, UpdateTime: timestamppb.New(id.UpdatedAt),
	}
	for _, a := range id.Addresses {
		out.Addresses = append(out.Addresses, &extractionv1.Address{Street: a.Street, City: a.City, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country})
	}
	return &extractionv1.GetIdentityResponse{Identity: out}, nil
}

var reportTypes = map[extractionv1.ReportType]string{extractionv1.ReportType_REPORT_TYPE_CASH_FLOW: "CASH_FLOW"}

func (g *GRPC) CreateReport(ctx context.Context, req *extractionv1.CreateReportRequest) (*extractionv1.CreateReportResponse, error) {
	return idempotent(ctx, g, "CreateReport", req.GetRequestId(), req, func(s *Service) (*extractionv1.CreateReportResponse, error) {
		r, err := s.CreateReport(ctx, caller.From(ctx), req.GetConsentId(), reportTypes[req.GetType()])
		if err != nil {
			return nil, err
		}
		return &extractionv1.CreateReportResponse{Report: reportProto(r)}, nil
	})
}

func (g *GRPC) GetReport(ctx context.Context, req *extractionv1.GetReportRequest) (*extractionv1.GetReportResponse, error) {
	r, err := g.svc.GetReport(ctx, caller.From(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &extractionv1.GetReportResponse{Report: reportProto(r)}, nil
}

func (g *GRPC) RefreshConsent(ctx context.Context, req *extractionv1.RefreshConsentRequest) (*extractionv1.RefreshConsentResponse, error) {
	r, err := g.svc.RefreshConsent(ctx, caller.From(ctx), req.GetClientId(), req.GetConsentId(), req.GetUpstreamFailedAccountIds()...)
	if err != nil {
		return nil, err
	}
	resp := &extractionv1.RefreshConsentResponse{
		Reason: r.Reason, Added: int32(r.Counts.Added), Modified: int32(r.Counts.Modified), Removed: int32(r.Counts.Removed),
	}
	for _, a := range r.Accounts {
		st := extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_SUCCESS
		if !a.OK {
			st = extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR
		}
		resp.Accounts = append(resp.Accounts, &extractionv1.AccountResult{AccountId: a.AccountID, Status: st, Reason: a.Reason})
	}
	return resp, nil
}

var consentStatuses = map[consentv1.ConsentStatus]ConsentStatus{
	consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED: ConsentAuthorised,
	consentv1.ConsentStatus_CONSENT_STATUS_REVOKED:    ConsentRevoked,
	consentv1.ConsentStatus_CONSENT_STATUS_EXPIRED:    ConsentExpired,
	consentv1.ConsentStatus_CONSENT_STATUS_REJECTED:   ConsentRejected,
}

func (g *GRPC) ConsentChanged(ctx context.Context, req *extractionv1.ConsentChangedRequest) (*extractionv1.ConsentChangedResponse, error) {
	var at time.Time
	if req.GetChangeTime() != nil {
		at = req.GetChangeTime().AsTime()
	}
	if err := g.svc.ConsentChanged(ctx, caller.From(ctx), req.GetClientId(), req.GetConsentId(), consentStatuses[req.GetStatus()], at); err != nil {
		return nil, err
	}
	return &extractionv1.ConsentChangedResponse{}, nil
}

// ---- translation

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var accountTypes = map[string]extractionv1.AccountType{
	"DEPOSITORY": extractionv1.AccountType_ACCOUNT_TYPE_DEPOSITORY,
	"CREDIT":     extractionv1.AccountType_ACCOUNT_TYPE_CREDIT,
	"LOAN":       extractionv1.AccountType_ACCOUNT_TYPE_LOAN,
	"INVESTMENT": extractionv1.AccountType_ACCOUNT_TYPE_INVESTMENT,
	"OTHER":      extractionv1.AccountType_ACCOUNT_TYPE_OTHER,
}

func accountProto(a Account) *extractionv1.Account {
	typ, ok := accountTypes[a.Type]
	if !ok {
		typ = extractionv1.AccountType_ACCOUNT_TYPE_OTHER
	}
	out := &extractionv1.Account{
		Id: a.ID, ConsentId: a.ConsentID, UserId: a.UserID, InstitutionId: a.InstitutionID, Type: typ, Subtype: a.Subtype,
		Name: a.Name, Mask: a.Mask, Currency: a.Currency, BankCode: a.BankCode, UpstreamId: a.UpstreamAccount.ID,
		CreateTime: timestamp(a.CreatedAt), UpdateTime: timestamp(a.UpdatedAt),
	}
	if a.HasBalance {
		out.Balance = &extractionv1.Balance{
			CurrentMinor: a.Balance.Current, AvailableMinor: a.Balance.Available, LimitMinor: a.Balance.Limit,
			AsOfTime: timestamp(a.Balance.AsOf),
		}
	}
	return out
}

func transactionsProto(ts []Transaction) []*extractionv1.Transaction {
	out := make([]*extractionv1.Transaction, 0, len(ts))
	for _, t := range ts {
		st := extractionv1.TransactionStatus_TRANSACTION_STATUS_BOOKED
		if t.Pending {
			st = extractionv1.TransactionStatus_TRANSACTION_STATUS_PENDING
		}
		pt := &extractionv1.Transaction{
			Id: t.ID, AccountId: t.AccountID, ConsentId: t.ConsentID, AmountMinor: t.AmountMinor, Currency: t.Currency,
			Status: st, BookingDate: t.BookingDate, ValueDate: t.ValueDate, Description: t.Description, Category: t.Category,
			UpstreamId: t.UpstreamTransaction.ID, CreateTime: timestamp(t.CreatedAt), UpdateTime: timestamp(t.UpdatedAt),
		}
		if t.CounterpartyName != "" {
			pt.Counterparty = &extractionv1.Counterparty{Name: t.CounterpartyName, Type: t.CounterpartyType}
		}
		out = append(out, pt)
	}
	return out
}

var jobStatuses = map[JobStatus]extractionv1.ExtractionStatus{
	Pending:   extractionv1.ExtractionStatus_EXTRACTION_STATUS_PENDING,
	Succeeded: extractionv1.ExtractionStatus_EXTRACTION_STATUS_SUCCEEDED,
	Failed:    extractionv1.ExtractionStatus_EXTRACTION_STATUS_FAILED,
}

func extractionProto(e Extraction) *extractionv1.Extraction {
	return &extractionv1.Extraction{
		Id: e.ID, ConsentId: e.ConsentID, Product: e.Product, Status: jobStatuses[e.Status], Reason: e.Reason,
		Added: int32(e.Counts.Added), Modified: int32(e.Counts.Modified), Removed: int32(e.Counts.Removed),
		CreateTime: timestamp(e.CreatedAt), FinishTime: timestamp(e.FinishedAt),
	}
}

var reportStatuses = map[JobStatus]extractionv1.ReportStatus{
	Pending:   extractionv1.ReportStatus_REPORT_STATUS_PENDING,
	Succeeded: extractionv1.ReportStatus_REPORT_STATUS_SUCCEEDED,
	Failed:    extractionv1.ReportStatus_REPORT_STATUS_FAILED,
}

func reportProto(r Report) *extractionv1.Report {
	out := &extractionv1.Report{
		Id: r.ID, ConsentId: r.ConsentID, Type: extractionv1.ReportType_REPORT_TYPE_CASH_FLOW, Status: reportStatuses[r.Status],
		Reason: r.Reason, CreateTime: timestamp(r.CreatedAt), FinishTime: timestamp(r.FinishedAt),
	}
	if cf := r.CashFlow; cf != nil {
		out.CashFlow = &extractionv1.CashFlowReport{FromDate: cf.From, ToDate: cf.To}
		for _, m := range cf.Months {
			out.CashFlow.Months = append(out.CashFlow.Months, &extractionv1.CashFlowMonth{
				Month: m.Month, Currency: m.Currency, InflowMinor: m.Inflow, OutflowMinor: m.Outflow, NetMinor: m.Net,
				ClosingBalanceMinor: m.ClosingBalance, Transactions: int32(m.Transactions),
			})
		}
		for _, inc := range cf.Recurring {
			out.CashFlow.RecurringIncome = append(out.CashFlow.RecurringIncome, &extractionv1.RecurringIncome{
				Description: inc.Description, Currency: inc.Currency, Frequency: inc.Frequency, AverageMinor: inc.Average,
				Occurrences: int32(inc.Occurrences), LastDate: inc.LastDate,
			})
		}
	}
	return out
}

func (g *GRPC) HandleUpstreamEvent(ctx context.Context, req *extractionv1.HandleUpstreamEventRequest) (*extractionv1.HandleUpstreamEventResponse, error) {
	if err := g.svc.HandleUpstreamEvent(ctx, caller.From(ctx), req.GetProvider(), req.GetEventType(), req.GetBody()); err != nil {
		return nil, err
	}
	return &extractionv1.HandleUpstreamEventResponse{}, nil
}
