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

	"puente.dev/pkg/authn"
)

// Errors are rendered as {"code": <gRPC code number>, "message": ..., "details": [...]} with the
// HTTP status of the gRPC code, Retry-After from RetryInfo, and WWW-Authenticate on 401.

func errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Internal, "internal error")
	}
	if st.Code() == codes.InvalidArgument && st.Message() != "" && len(st.Details()) == 0 {
		// grpc-gateway's own parse errors (a malformed body): keep them, but name the body.
		st = status.New(codes.InvalidArgument, "request body: "+st.Message())
	}
	writeError(w, r, st)
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
