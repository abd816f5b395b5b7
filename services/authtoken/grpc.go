package authtoken

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "puente.dev/gen/go/puente/api/v1"
	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/authn"
	"puente.dev/pkg/caller"
	"puente.dev/pkg/idempotency"
	"puente.dev/pkg/page"
	"puente.dev/services/authtoken/taxid"
)

// GRPC serves the service's gRPC APIs: proto ⇄ domain translation only.
type GRPC struct {
	authtokenv1.UnimplementedTokenServiceServer
	authtokenv1.UnimplementedClientServiceServer
	authtokenv1.UnimplementedApiKeyServiceServer
	authtokenv1.UnimplementedUserServiceServer
	authtokenv1.UnimplementedLinkTokenServiceServer
	svc *Service
}

// NewGRPC returns the gRPC handlers over svc.
func NewGRPC(svc *Service) *GRPC { return &GRPC{svc: svc} }

// idempotent runs create once per request_id of the calling client and method, replaying the
// first response to repeats.
func idempotent[T proto.Message](ctx context.Context, g *GRPC, method, requestID string, req proto.Message, create func(*Service) (T, error)) (T, error) {
	var zero T
	p := caller.From(ctx)
	var scope string
	switch {
	case p.Kind == apiv1.Principal_PRINCIPAL_ADMIN:
		scope = "admin:" + method
	case p.ClientID != "":
		scope = p.ClientID + ":" + method
	default:
		return zero, fmt.Errorf("idempotent %s: no client to scope request_id to", method)
	}
	return idempotency.Call(ctx, g.svc.Idempotent, scope, requestID, req, create)
}

// ---- TokenService

func (g *GRPC) CreateToken(ctx context.Context, req *authtokenv1.CreateTokenRequest) (*authtokenv1.CreateTokenResponse, error) {
	var grant Grant
	var err error
	switch req.GetGrantType() {
	case "refresh_token":
		grant, err = g.svc.Refresh(ctx, req.GetClientId(), req.GetClientSecret(), req.GetRefreshToken())
	default:
		grant, err = g.svc.ClientCredentials(ctx, req.GetClientId(), req.GetClientSecret())
	}
	if err != nil {
		return nil, err
	}
	return &authtokenv1.CreateTokenResponse{
		AccessToken: grant.AccessToken, TokenType: "Bearer", ExpiresIn: int64(grant.ExpiresIn / time.Second),
		RefreshToken: grant.RefreshToken,
	}, nil
}

func (g *GRPC) GetJwks(ctx context.Context, _ *authtokenv1.GetJwksRequest) (*authtokenv1.GetJwksResponse, error) {
	keys, err := g.svc.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	resp := &authtokenv1.GetJwksResponse{}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, &authtokenv1.Jwk{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Use: k.Use, Alg: k.Alg})
	}
	return resp, nil
}

func (g *GRPC) CreateTaskToken(ctx context.Context, req *authtokenv1.CreateTaskTokenRequest) (*authtokenv1.CreateTaskTokenResponse, error) {
	return idempotent(ctx, g, "CreateTaskToken", req.GetRequestId(), req, func(s *Service) (*authtokenv1.CreateTaskTokenResponse, error) {
		token, exp, err := s.CreateTaskToken(ctx, caller.From(ctx).ClientID, req.GetUserId(), req.GetConsentId(), time.Duration(req.GetTtlSeconds())*time.Second)
		if err != nil {
			return nil, err
		}
		return &authtokenv1.CreateTaskTokenResponse{TaskToken: token, ExpireTime: timestamppb.New(exp)}, nil
	})
}

func (g *GRPC) RotateSigningKey(ctx context.Context, _ *authtokenv1.RotateSigningKeyRequest) (*authtokenv1.RotateSigningKeyResponse, error) {
	k, err := g.svc.RotateSigningKey(ctx)
	if err != nil {
		return nil, err
	}
	return &authtokenv1.RotateSigningKeyResponse{Kid: k.ID, ActivateTime: timestamppb.New(k.ActivateAt)}, nil
}

// ---- ClientService

func (g *GRPC) CreateClient(ctx context.Context, req *authtokenv1.CreateClientRequest) (*authtokenv1.CreateClientResponse, error) {
	return idempotent(ctx, g, "CreateClient", req.GetRequestId(), req, func(s *Service) (*authtokenv1.CreateClientResponse, error) {
		c, k, err := s.CreateClient(ctx, NewClient{
			Name: req.GetName(), RedirectURIs: req.GetRedirectUris(),
			Environment: environments[req.GetEnvironment()], AllowedOrigins: req.GetAllowedOrigins(),
		})
		if err != nil {
			return nil, err
		}
		return &authtokenv1.CreateClientResponse{Client: clientProto(c), ApiKey: apiKeyProto(k)}, nil
	})
}

func (g *GRPC) GetClient(ctx context.Context, req *authtokenv1.GetClientRequest) (*authtokenv1.GetClientResponse, error) {
	c, err := g.svc.GetClient(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &authtokenv1.GetClientResponse{Client: clientProto(c)}, nil
}

func (g *GRPC) ListClients(ctx context.Context, req *authtokenv1.ListClientsRequest) (*authtokenv1.ListClientsResponse, error) {
	p, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "cli")
	if err != nil {
		return nil, err
	}
	cs, err := g.svc.ListClients(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &authtokenv1.ListClientsResponse{}
	for _, c := range cs {
		resp.Clients = append(resp.Clients, clientProto(c))
	}
	if len(cs) == p.Limit {
		resp.NextPageToken = page.Token(cs[len(cs)-1].ID)
	}
	return resp, nil
}

var environments = map[authtokenv1.ClientEnvironment]string{
	authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_SANDBOX:    authn.EnvSandbox,
	authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_PRODUCTION: authn.EnvProduction,
}

func clientProto(c Client) *authtokenv1.Client {
	env := authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_SANDBOX
	if c.Environment == authn.EnvProduction {
		env = authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_PRODUCTION
	}
	return &authtokenv1.Client{
		Id: c.ID, Name: c.Name, RedirectUris: c.RedirectURIs, CreateTime: timestamppb.New(c.CreatedAt),
		Environment: env, AllowedOrigins: c.AllowedOrigins,
	}
}

// ---- ApiKeyService

func (g *GRPC) CreateApiKey(ctx context.Context, req *authtokenv1.CreateApiKeyRequest) (*authtokenv1.CreateApiKeyResponse, error) {
	return idempotent(ctx, g, "CreateApiKey", req.GetRequestId(), req, func(s *Service) (*authtokenv1.CreateApiKeyResponse, error) {
		k, err := s.CreateAPIKey(ctx, caller.From(ctx).ClientID, req.GetName())
		if err != nil {
			return nil, err
		}
		return &authtokenv1.CreateApiKeyResponse{ApiKey: apiKeyProto(k)}, nil
	})
}

func (g *GRPC) ListApiKeys(ctx context.Context, _ *authtokenv1.ListApiKeysRequest) (*authtokenv1.ListApiKeysResponse, error) {
	ks, err := g.svc.ListAPIKeys(ctx, caller.From(ctx).ClientID)
	if err != nil {
		return nil, err
	}
	resp := &authtokenv1.ListApiKeysResponse{}
	for _, k := range ks {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyProto(k))
	}
	return resp, nil
}

func (g *GRPC) RevokeApiKey(ctx context.Context, req *authtokenv1.RevokeApiKeyRequest) (*authtokenv1.RevokeApiKeyResponse, error) {
	k, err := g.svc.RevokeAPIKey(ctx, caller.From(ctx).ClientID, req.GetId())
	if err != nil {
		return nil, err
	}
	return &authtokenv1.RevokeApiKeyResponse{ApiKey: apiKeyProto(k)}, nil
}

func apiKeyProto(k APIKey) *authtokenv1.ApiKey {
	p := &authtokenv1.ApiKey{Id: k.ID, Name: k.Name, Secret: k.Secret, SecretHint: k.SecretHint, CreateTime: timestamppb.New(k.CreatedAt)}
	if k.RevokedAt != nil {
		p.RevokeTime = timestamppb.New(*k.RevokedAt)
	}
	return p
}

// ---- UserService

var userKinds = map[authtokenv1.UserKind]UserKind{
	authtokenv1.UserKind_USER_KIND_NATURAL:   Natural,
	authtokenv1.UserKind_USER_KIND_JURIDICAL: Juridical,
}

var taxTypes = map[authtokenv1.TaxIdType]taxid.Type{
	authtokenv1.TaxIdType_TAX_ID_TYPE_RUT:   taxid.RUT,
	authtokenv1.TaxIdType_TAX_ID_TYPE_CPF:   taxid.CPF,
	authtokenv1.TaxIdType_TAX_ID_TYPE_CNPJ:  taxid.CNPJ,
	authtokenv1.TaxIdType_TAX_ID_TYPE_RFC:   taxid.RFC,
	authtokenv1.TaxIdType_TAX_ID_TYPE_OTHER: taxid.Other,
}

func (g *GRPC) CreateUser(ctx context.Context, req *authtokenv1.CreateUserRequest) (*authtokenv1.CreateUserResponse, error) {
	return idempotent(ctx, g, "CreateUser", req.GetRequestId(), req, func(s *Service) (*authtokenv1.CreateUserResponse, error) {
		n := NewUser{ExternalRef: req.GetExternalRef(), Kind: userKinds[req.GetKind()]}
		if t := req.GetTaxId(); t != nil {
			n.TaxIDType, n.TaxID = taxTypes[t.GetType()], t.GetValue()
		}
		u, err := s.CreateUser(ctx, caller.From(ctx).ClientID, n)
		if err != nil {
			return nil, err
		}
		return &authtokenv1.CreateUserResponse{User: userProto(u)}, nil
	})
}

func (g *GRPC) GetUser(ctx context.Context, req *authtokenv1.GetUserRequest) (*authtokenv1.GetUserResponse, error) {
	p := caller.From(ctx)
	if p.Kind == apiv1.Principal_PRINCIPAL_TASK && p.UserID != req.GetId() {
		return nil, ErrUserNotFound
	}
	u, err := g.svc.GetUser(ctx, p.ClientID, req.GetId())
	if err != nil {
		return nil, err
	}
	return &authtokenv1.GetUserResponse{User: userProto(u)}, nil
}

func (g *GRPC) ResolveUsers(ctx context.Context, req *authtokenv1.ResolveUsersRequest) (*authtokenv1.ResolveUsersResponse, error) {
	us, err := g.svc.ResolveUsers(ctx, req.GetClientId(), req.GetIds(), req.GetExternalRefs())
	if err != nil {
		return nil, err
	}
	resp := &authtokenv1.ResolveUsersResponse{Users: make([]*authtokenv1.User, 0, len(us))}
	for _, u := range us {
		resp.Users = append(resp.Users, userProto(u))
	}
	return resp, nil
}

func (g *GRPC) ListUsers(ctx context.Context, req *authtokenv1.ListUsersRequest) (*authtokenv1.ListUsersResponse, error) {
	c := caller.From(ctx)
	pg, err := page.Parse(req.GetPageSize(), req.GetPageToken(), "usr")
	if err != nil {
		return nil, err
	}
	var us []User
	if c.Kind == apiv1.Principal_PRINCIPAL_TASK {
		// A task token sees its one user, as a list of one (or none, if the filter excludes it).
		u, err := g.svc.GetUser(ctx, c.ClientID, c.UserID)
		if err != nil {
			return nil, err
		}
		if (req.GetExternalRef() == "" || req.GetExternalRef() == u.ExternalRef) && pg.After == "" {
			us = []User{u}
		}
	} else if us, err = g.svc.ListUsers(ctx, c.ClientID, req.GetExternalRef(), pg); err != nil {
		return nil, err
	}
	resp := &authtokenv1.ListUsersResponse{}
	for _, u := range us {
		resp.Users = append(resp.Users, userProto(u))
	}
	if len(us) == pg.Limit && len(us) > 0 {
		resp.NextPageToken = page.Token(us[len(us)-1].ID)
	}
	return resp, nil
}

func userProto(u User) *authtokenv1.User {
	p := &authtokenv1.User{Id: u.ID, ExternalRef: u.ExternalRef, CreateTime: timestamppb.New(u.CreatedAt)}
	for k, v := range userKinds {
		if v == u.Kind {
			p.Kind = k
		}
	}
	if u.TaxIDType != "" {
		p.TaxId = &authtokenv1.TaxId{Value: u.TaxID}
		for k, v := range taxTypes {
			if TaxTypeName(v) == u.TaxIDType {
				p.TaxId.Type = k
			}
		}
	}
	return p
}

// ---- LinkTokenService

func (g *GRPC) CreateLinkToken(ctx context.Context, req *authtokenv1.CreateLinkTokenRequest) (*authtokenv1.CreateLinkTokenResponse, error) {
	return idempotent(ctx, g, "CreateLinkToken", req.GetRequestId(), req, func(s *Service) (*authtokenv1.CreateLinkTokenResponse, error) {
		t, err := s.CreateLinkToken(ctx, caller.From(ctx).ClientID, NewLinkToken{
			UserID: req.GetUserId(), Products: req.GetProducts(), Country: req.GetCountry(), Language: req.GetLanguage(),
			RedirectURI: req.GetRedirectUri(), ConsentID: req.GetConsentId(), TTL: time.Duration(req.GetTtlSeconds()) * time.Second,
		})
		if err != nil {
			return nil, err
		}
		return &authtokenv1.CreateLinkTokenResponse{Id: t.ID, LinkToken: t.Token, ExpireTime: timestamppb.New(t.ExpiresAt)}, nil
	})
}

func (g *GRPC) ExchangeLinkToken(ctx context.Context, req *authtokenv1.ExchangeLinkTokenRequest) (*authtokenv1.ExchangeLinkTokenResponse, error) {
	ws, err := g.svc.ExchangeLinkToken(ctx, req.GetLinkToken())
	if err != nil {
		return nil, err
	}
	l := ws.Link
	return &authtokenv1.ExchangeLinkTokenResponse{
		SessionToken: ws.Token, ExpireTime: timestamppb.New(ws.ExpiresAt), ClientId: l.ClientID, UserId: l.UserID,
		Products: l.Products, Country: l.Country, Language: l.Language, RedirectUri: l.RedirectURI, ConsentId: l.ConsentID,
		AllowedOrigins: ws.Origins, ClientName: ws.ClientName,
	}, nil
}
