package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"puente.dev/pkg/apierr"
)

func TestStatusMapsKindsAndDetails(t *testing.T) {
	err := fmt.Errorf("create user: %w", apierr.Invalid("tax_id.value", "check digit does not match"))
	st, internal := apierr.Status(err)
	require.False(t, internal)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, "tax_id.value: check digit does not match", st.Message())
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	require.NotNil(t, br)
	require.Equal(t, "tax_id.value", br.FieldViolations[0].Field)
}

func TestStatusMasksInternalErrors(t *testing.T) {
	st, internal := apierr.Status(errors.New("pq: password authentication failed for user secret"))
	require.True(t, internal)
	require.Equal(t, codes.Internal, st.Code())
	require.Equal(t, "internal error", st.Message())
}

func TestStatusCarriesRetryInfo(t *testing.T) {
	st, _ := apierr.Status(&apierr.Error{Kind: apierr.ResourceExhausted, Message: "slow down", RetryAfter: 3 * time.Second})
	require.Equal(t, codes.ResourceExhausted, st.Code())
	var found bool
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			found = r.RetryDelay.AsDuration() == 3*time.Second
		}
	}
	require.True(t, found)
}

func TestStatusOfContextErrors(t *testing.T) {
	st, _ := apierr.Status(fmt.Errorf("query: %w", context.DeadlineExceeded))
	require.Equal(t, codes.DeadlineExceeded, st.Code())
}
