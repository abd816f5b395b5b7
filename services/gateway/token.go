package gateway

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
)

// tokenEndpoint is POST /v1/oauth/token as OAuth 2.0 clients expect it (RFC 6749 §4.4, §6): a form
// post or JSON, client credentials in the body or by HTTP Basic, and errors as
// {"error", "error_description"} beside Puente's own {code, message}.
func (g *gateway) tokenEndpoint(tokens authtokenv1.TokenServiceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := parseTokenRequest(r)
		if err != nil {
			writeOAuthError(w, r, "invalid_request", status.New(codes.InvalidArgument, err.Error()))
			return
		}
		if req.GrantType != "client_credentials" && req.GrantType != "refresh_token" {
			writeOAuthError(w, r, "unsupported_grant_type", status.New(codes.InvalidArgument, "grant_type: must be client_credentials or refresh_token"))
			return
		}
		ctx := r.Context()
		if id := r.Header.Get("X-Request-Id"); id != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
		}
		resp, err := tokens.CreateToken(ctx, req)
		if err != nil {
			st := g.public(ctx, err)
			writeOAuthError(w, r, oauthErrorCode(st), st)
			return
		}
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token":  resp.GetAccessToken(),
			"token_type":    resp.GetTokenType(),
			"expires_in":    resp.GetExpiresIn(),
			"refresh_token": resp.GetRefreshToken(),
		})
	})
}

const maxTokenBody = 64 << 10

type tokenJSON struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

func parseTokenRequest(r *http.Request) (*authtokenv1.CreateTokenRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenBody+1))
	if err != nil {
		return nil, errBody("cannot be read")
	}
	if len(body) > maxTokenBody {
		return nil, errBody("is too large")
	}
	var t tokenJSON
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errBody("is not a valid form")
		}
		t = tokenJSON{form.Get("grant_type"), form.Get("client_id"), form.Get("client_secret"), form.Get("refresh_token"), form.Get("scope")}
	case "application/json", "":
		if err := json.Unmarshal(body, &t); err != nil {
			return nil, errBody("is not valid JSON")
		}
	default:
		return nil, errBody("must be application/x-www-form-urlencoded or application/json")
	}
	if id, secret, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: Basic credentials are form-encoded before base64.
		if id, err = url.QueryUnescape(id); err != nil {
			return nil, errBody("has a badly encoded Basic client id")
		}
		if secret, err = url.QueryUnescape(secret); err != nil {
			return nil, errBody("has a badly encoded Basic client secret")
		}
		if t.ClientSecret != "" {
			return nil, errBody("must not carry client credentials both in the body and by HTTP Basic")
		}
		t.ClientID, t.ClientSecret = id, secret
	}
	return &authtokenv1.CreateTokenRequest{GrantType: t.GrantType, ClientId: t.ClientID, ClientSecret: t.ClientSecret, RefreshToken: t.RefreshToken, Scope: t.Scope}, nil
}

type bodyError string

func (e bodyError) Error() string { return "request body " + string(e) }

func errBody(s string) error { return bodyError(s) }

// oauthErrorCode picks the RFC 6749 §5.2 error for a status.
func oauthErrorCode(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			switch info.GetReason() {
			case "INVALID_CLIENT":
				return "invalid_client"
			case "INVALID_GRANT":
				return "invalid_grant"
			}
		}
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return "invalid_request"
	case codes.Unauthenticated:
		return "invalid_client"
	case codes.Unavailable, codes.ResourceExhausted:
		return "temporarily_unavailable"
	}
	return "server_error"
}

func writeOAuthError(w http.ResponseWriter, r *http.Request, code string, st *status.Status) {
	httpStatus := http.StatusBadRequest
	switch code {
	case "invalid_client":
		httpStatus = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="puente"`)
	case "temporarily_unavailable":
		httpStatus = http.StatusServiceUnavailable
	case "server_error":
		httpStatus = http.StatusInternalServerError
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, httpStatus, map[string]any{
		"error":             code,
		"error_description": st.Message(),
		"code":              int32(st.Code()),
		"message":           st.Message(),
	})
}

func writeJSON(w http.ResponseWriter, httpStatus int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	json.NewEncoder(w).Encode(v)
}
