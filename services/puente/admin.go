package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	"puente.dev/pkg/secretbox"
)

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// adminCmd runs operator commands against a running authtoken service, over gRPC, with the admin
// token: the same path the REST admin API takes, so both are checked the same way.
func adminCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: puente admin create-client|list-clients|rotate-signing-key [flags]")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("puente admin "+sub, flag.ContinueOnError)
	addr := fs.String("addr", envOr("PUENTE_ADMIN_ADDR", "127.0.0.1:9090"), "gRPC address of the authtoken service")
	name := fs.String("name", "", "create-client: the client's name")
	var redirects stringList
	fs.Var(&redirects, "redirect-uri", "create-client: an allowed redirect URI (repeatable)")
	var origins stringList
	fs.Var(&origins, "origin", "create-client: a web origin its widget sessions may be used from (repeatable)")
	production := fs.Bool("production", false, "create-client: a production client (default: sandbox)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := os.Getenv("PUENTE_ADMIN_TOKEN")
	if token == "" {
		return errors.New("PUENTE_ADMIN_TOKEN is not set")
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 30*time.Second)
	defer cancel()
	var resp proto.Message
	switch sub {
	case "create-client":
		env := authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_SANDBOX
		if *production {
			env = authtokenv1.ClientEnvironment_CLIENT_ENVIRONMENT_PRODUCTION
		}
		resp, err = authtokenv1.NewClientServiceClient(conn).CreateClient(ctx, &authtokenv1.CreateClientRequest{
			Name: *name, RedirectUris: redirects, AllowedOrigins: origins, Environment: env,
		})
	case "list-clients":
		resp, err = authtokenv1.NewClientServiceClient(conn).ListClients(ctx, &authtokenv1.ListClientsRequest{})
	case "rotate-signing-key":
		resp, err = authtokenv1.NewTokenServiceClient(conn).RotateSigningKey(ctx, &authtokenv1.RotateSigningKeyRequest{})
	default:
		return fmt.Errorf("unknown admin command %q", sub)
	}
	if err != nil {
		return err
	}
	out, _ := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(resp)
	fmt.Fprintln(stdout, string(out))
	return nil
}

func keygenCmd(stdout io.Writer) error {
	fmt.Fprintf(stdout, "PUENTE_HASH_KEY=%s\n", randomB64(32))
	fmt.Fprintf(stdout, "PUENTE_ENCRYPTION_KEYS=%s\n", secretbox.NewKeySpec("k"+time.Now().UTC().Format("20060102")))
	fmt.Fprintf(stdout, "PUENTE_ADMIN_TOKEN=%s\n", "padm_"+randomB64URL(32))
	fmt.Fprintf(stdout, "PUENTE_SERVICE_TOKEN=%s\n", "psvc_"+randomB64URL(32))
	return nil
}

func randomB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomB64URL(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
