package connection

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/apierr"
)

// UserDirectory checks users with the authtoken service, as the caller: the caller's own token
// goes along, so another client's user reads as not found there too. It reads what a client
// registered with the internal service token.
type UserDirectory struct {
	Client       authtokenv1.UserServiceClient
	Clients      authtokenv1.ClientServiceClient
	ServiceToken string
}

func (d UserDirectory) RedirectURIs(ctx context.Context, clientID string) ([]string, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+d.ServiceToken)
	resp, err := d.Clients.GetClient(ctx, &authtokenv1.GetClientRequest{Id: clientID})
	if err != nil {
		return nil, fmt.Errorf("read client's redirect URIs from authtoken: %w", err)
	}
	return resp.GetClient().GetRedirectUris(), nil
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
