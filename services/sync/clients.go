package syncs

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
	extractionv1 "puente.dev/gen/go/puente/extraction/v1"
)

// The gRPC clients of the services a sync needs. Each call goes as the service itself (the
// internal service token), naming the client it acts for: a sync runs in the background, with no
// caller's token to pass on.

// asService is ctx carrying the internal service token.
func asService(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// DirectoryClient is Directory over the authtoken service's UserService.ResolveUsers.
type DirectoryClient struct {
	client authtokenv1.UserServiceClient
	token  string
}

// NewDirectoryClient returns a Directory calling c with serviceToken.
func NewDirectoryClient(c authtokenv1.UserServiceClient, serviceToken string) DirectoryClient {
	return DirectoryClient{client: c, token: serviceToken}
}

func (d DirectoryClient) Resolve(ctx context.Context, clientID string, ids, externalRefs []string) ([]DirectoryUser, error) {
	resp, err := d.client.ResolveUsers(asService(ctx, d.token), &authtokenv1.ResolveUsersRequest{
		ClientId: clientID, Ids: ids, ExternalRefs: externalRefs,
	})
	if err != nil {
		return nil, fmt.Errorf("resolve users with authtoken: %w", err)
	}
	out := make([]DirectoryUser, 0, len(resp.GetUsers()))
	for _, u := range resp.GetUsers() {
		out = append(out, DirectoryUser{ID: u.GetId(), ExternalRef: u.GetExternalRef()})
	}
	return out, nil
}

// ConsentsClient is Consents over the consent service's ConsentService.ListConsents.
type ConsentsClient struct {
	client consentv1.ConsentServiceClient
	token  string
}

// NewConsentsClient returns a Consents calling c with serviceToken.
func NewConsentsClient(c consentv1.ConsentServiceClient, serviceToken string) ConsentsClient {
	return ConsentsClient{client: c, token: serviceToken}
}

// consentsPageSize is the largest page ListConsents gives.
const consentsPageSize = 500

// maxConsentPages stops a listing whose page tokens never end (a bug upstream) from looping.
const maxConsentPages = 100

func (c ConsentsClient) ListAuthorised(ctx context.Context, clientID, userID string) ([]Consent, error) {
	ctx = asService(ctx, c.token)
	var out []Consent
	token := ""
	for range maxConsentPages {
		resp, err := c.client.ListConsents(ctx, &consentv1.ListConsentsRequest{
			ClientId: clientID, UserId: userID, Status: consentv1.ConsentStatus_CONSENT_STATUS_AUTHORISED,
			PageSize: consentsPageSize, PageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list consents with the consent service: %w", err)
		}
		for _, cn := range resp.GetConsents() {
			out = append(out, Consent{ID: cn.GetId(), InstitutionID: cn.GetInstitutionId(), ConnectionID: cn.GetConnectionId()})
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
	return nil, fmt.Errorf("list consents with the consent service: more than %d pages", maxConsentPages)
}

// RefresherClient is Refresher over the extraction service's ExtractionService.RefreshConsent.
type RefresherClient struct {
	client extractionv1.ExtractionServiceClient
	token  string
}

// NewRefresherClient returns a Refresher calling c with serviceToken.
func NewRefresherClient(c extractionv1.ExtractionServiceClient, serviceToken string) RefresherClient {
	return RefresherClient{client: c, token: serviceToken}
}

var accountStatusOf = map[extractionv1.AccountResultStatus]AccountStatus{
	extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_SUCCESS: AccountSuccess,
	extractionv1.AccountResultStatus_ACCOUNT_RESULT_STATUS_ERROR:   AccountError,
}

func (r RefresherClient) Refresh(ctx context.Context, clientID, consentID string, upstreamFailed []string) (Refresh, error) {
	resp, err := r.client.RefreshConsent(asService(ctx, r.token), &extractionv1.RefreshConsentRequest{
		ClientId: clientID, ConsentId: consentID, UpstreamFailedAccountIds: upstreamFailed,
	})
	if err != nil {
		return Refresh{}, fmt.Errorf("refresh consent with the extraction service: %w", err)
	}
	out := Refresh{
		Reason: resp.GetReason(),
	}
	for _, a := range resp.GetAccounts() {
		// An unknown status is kept as it came: accountResults reads it as an ERROR.
		st, ok := accountStatusOf[a.GetStatus()]
		if !ok {
			st = AccountStatus(a.GetStatus().String())
		}
		out.Accounts = append(out.Accounts, AccountRefresh{AccountID: a.GetAccountId(), Status: st, Reason: a.GetReason()})
	}
	return out, nil
}

// CatalogClient is Catalog over the connection service's InstitutionService.GetInstitution.
type CatalogClient struct {
	client connectionv1.InstitutionServiceClient
	token  string
}

// NewCatalogClient returns a Catalog calling c with serviceToken.
func NewCatalogClient(c connectionv1.InstitutionServiceClient, serviceToken string) CatalogClient {
	return CatalogClient{client: c, token: serviceToken}
}

func (c CatalogClient) Provider(ctx context.Context, institutionID string) (string, error) {
	resp, err := c.client.GetInstitution(asService(ctx, c.token), &connectionv1.GetInstitutionRequest{Id: institutionID})
	if err != nil {
		return "", fmt.Errorf("get institution from the connection service: %w", err)
	}
	return resp.GetInstitution().GetProvider(), nil
}
