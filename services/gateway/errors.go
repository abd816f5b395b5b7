package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"puente.dev/pkg/apierr"
	"puente.dev/pkg/authn"
)

// Errors are rendered as {"code": <gRPC code number>, "message": ..., "details": [...]} with the
// HTTP status of the gRPC code, Retry-After from RetryInfo, and WWW-Authenticate on 401.

// errorHandler renders a failed call. Only Puente's own errors keep their message; the gateway's
// own parse errors are about the request body; anything else (a backend that cannot be reached)
// gets a fixed message, and the original is logged.
func (g *gateway) errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, g.public(ctx, err))
}

func (g *gateway) public(ctx context.Context, err error) *status.Status {
	st, ok := status.FromError(err)
	if !ok {
		g.log.ErrorContext(ctx, "gateway error", "err", err)
		return status.New(codes.Internal, "internal error")
	}
	if st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		// grpc-gateway's own parse errors (a malformed body; the services' validation errors
		// always carry details): keep them, but name the body.
		return status.New(codes.InvalidArgument, "request body: "+st.Message())
	}
	public, masked := apierr.Public(st)
	if masked {
		g.log.WarnContext(ctx, "backend error", "code", st.Code().String(), "err", st.Message())
	}
	return public
}

func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		writeError(w, r, status.New(codes.Unimplemented, "method not allowed"))
	default:
		writeError(w, r, status.New(codes.NotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
	}
}

func errStatus(err error) *status.Status {
	if errors.Is(err, authn.ErrInvalidToken) {
		return status.New(codes.Unauthenticated, "invalid or expired token")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.New(codes.Canceled, "request canceled")
	}
	return status.New(codes.Unavailable, "cannot verify tokens right now; retry")
}

type errorBody struct {
	Code    int32             `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, st *status.Status) {
	body := errorBody{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Proto().GetDetails() {
		if raw, err := (protojson.MarshalOptions{UseProtoNames: true}).Marshal(d); err == nil {
			body.Details = append(body.Details, raw)
		}
		if ri := new(errdetails.RetryInfo); d.UnmarshalTo(ri) == nil && ri.GetRetryDelay() != nil {
			secs := int(ri.GetRetryDelay().AsDuration().Seconds() + 0.999)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
	}
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	if httpStatus == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="puente"`)
	}
	writeJSON(w, httpStatus, body)
}
