package connection

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/apierr"
)

// UserDirectory checks users with the authtoken service, as the caller: the caller's own token
// goes along, so another client's user reads as not found there too.
type UserDirectory struct {
	Client authtokenv1.UserServiceClient
}

var errUserNotFound = apierr.New(apierr.NotFound, "NOT_FOUND", "user not found")

func (d UserDirectory) Check(ctx context.Context, userID string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	if auth := md.Get("authorization"); len(auth) > 0 {
		out.Set("authorization", auth[0])
	}
	_, err := d.Client.GetUser(metadata.NewOutgoingContext(ctx, out), &authtokenv1.GetUserRequest{Id: userID})
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.NotFound:
		return errUserNotFound
	}
	return errors.Join(errors.New("check user with authtoken"), err)
}
