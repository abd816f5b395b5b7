// Package apierr is the one place where errors become gRPC statuses. Domain code returns (or
// wraps) an *Error of a Kind; the server's error interceptor calls Status once; anything that is not
// an *Error is an internal error, logged in full and shown to the caller as a fixed message.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Kind is the class of a failure, as a caller sees it.
type Kind int

const (
	Internal Kind = iota
	InvalidArgument
	NotFound
	AlreadyExists
	FailedPrecondition
	PermissionDenied
	Unauthenticated
	ResourceExhausted
	Unavailable
)

var codeOf = map[Kind]codes.Code{
	Internal:           codes.Internal,
	InvalidArgument:    codes.InvalidArgument,
	NotFound:           codes.NotFound,
	AlreadyExists:      codes.AlreadyExists,
	FailedPrecondition: codes.FailedPrecondition,
	PermissionDenied:   codes.PermissionDenied,
	Unauthenticated:    codes.Unauthenticated,
	ResourceExhausted:  codes.ResourceExhausted,
	Unavailable:        codes.Unavailable,
}

// Domain is the ErrorInfo domain of Puente's errors.
const Domain = "puente.dev"

// FieldViolation names one bad field of a request.
type FieldViolation struct {
	Field  string // proto field path, e.g. "tax_id.value"
	Reason string // e.g. "check digit does not match"
}

// Error is a failure a caller may see. Message is public: never put a secret or a raw input in it.
type Error struct {
	Kind       Kind
	Message    string
	Reason     string // machine-readable, UPPER_SNAKE, sent as ErrorInfo.reason
	Fields     []FieldViolation
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// New returns an error of the given kind; reason is optional.
func New(kind Kind, reason, message string) *Error {
	return &Error{Kind: kind, Reason: reason, Message: message}
}

// Invalid returns an InvalidArgument error naming one field.
func Invalid(field, reason string) *Error {
	return &Error{
		Kind:    InvalidArgument,
		Reason:  "INVALID_ARGUMENT",
		Message: fmt.Sprintf("%s: %s", field, reason),
		Fields:  []FieldViolation{{Field: field, Reason: reason}},
	}
}

// KindOf returns the kind of err (Internal when err carries no *Error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Status turns err into the status a caller sees, and reports whether it was internal (and so must be
// logged in full by the caller of Status).
func Status(err error) (st *status.Status, internal bool) {
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		// A status from a gRPC call further down: its own errors pass on, anything else
		// (a transport error naming hosts and ports) is masked.
		return Public(s)
	}
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled"), false
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded"), false
	default:
		return status.New(codes.Internal, "internal error"), true
	}
	code := codeOf[e.Kind]
	st = status.New(code, e.Message)
	var details []protoadapt.MessageV1
	if e.Reason != "" {
		details = append(details, &errdetails.ErrorInfo{Reason: e.Reason, Domain: Domain})
	}
	if len(e.Fields) > 0 {
		br := &errdetails.BadRequest{}
		for _, f := range e.Fields {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Reason})
		}
		details = append(details, br)
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	if len(details) > 0 {
		if withDetails, err := st.WithDetails(details...); err == nil {
			st = withDetails
		}
	}
	return st, e.Kind == Internal
}

// Public returns st if it is one of Puente's own errors (it carries Puente's ErrorInfo, or
// names bad fields), and otherwise a status of the same code with a fixed message, reporting
// that st must be logged rather than shown: a transport error's text names hosts and ports.
func Public(st *status.Status) (public *status.Status, masked bool) {
	if st.Code() == codes.OK {
		return st, false
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == Domain {
				return st, false
			}
		case *errdetails.BadRequest:
			return st, false
		}
	}
	msg, ok := fixedMessages[st.Code()]
	if !ok {
		msg = "internal error"
	}
	return status.New(st.Code(), msg), true
}

var fixedMessages = map[codes.Code]string{
	codes.Canceled:          "request canceled",
	codes.DeadlineExceeded:  "deadline exceeded",
	codes.Unavailable:       "service unavailable; retry",
	codes.ResourceExhausted: "too many requests; retry later",
	codes.Unauthenticated:   "unauthenticated",
	codes.PermissionDenied:  "permission denied",
	codes.NotFound:          "not found",
	codes.Unimplemented:     "not implemented",
}
