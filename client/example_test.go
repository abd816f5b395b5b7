package client_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"strings"

	"puente.dev/client"
	authtokenv1 "puente.dev/gen/go/puente/authtoken/v1"
	connectionv1 "puente.dev/gen/go/puente/connection/v1"
	consentv1 "puente.dev/gen/go/puente/consent/v1"
)

// A backend dials Puente with its client credentials and calls it; the token is fetched,
// cached and refreshed behind the stubs. In production the Config comes from client.FromEnv,
// with TLS rather than Insecure.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{
		Target:       puenteAddr, // e.g. dns:///puente.internal:9090
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Insecure:     true, // a local suite; use TLS elsewhere
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.Users.CreateUser(ctx, &authtokenv1.CreateUserRequest{
		ExternalRef: "customer-" + rand.Text(), // your own id for the user
		Kind:        authtokenv1.UserKind_USER_KIND_NATURAL,
	})
	if err != nil {
		log.Fatal(err)
	}
	if strings.HasPrefix(resp.GetUser().GetId(), "usr_") {
		fmt.Println("created usr_…")
	}
	fmt.Println(resp.GetUser().GetKind())
	// Output:
	// created usr_…
	// USER_KIND_NATURAL
}

// A consent for a sandbox bank in Chile, created and read back.
func Example_readConsent() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Target: puenteAddr, ClientID: clientID, ClientSecret: clientSecret, Insecure: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	user, err := c.Users.CreateUser(ctx, &authtokenv1.CreateUserRequest{
		ExternalRef: "customer-" + rand.Text(),
		Kind:        authtokenv1.UserKind_USER_KIND_NATURAL,
	})
	if err != nil {
		log.Fatal(err)
	}
	banks, err := c.Institutions.ListInstitutions(ctx, &connectionv1.ListInstitutionsRequest{Country: "CL", Query: "Arena"})
	if err != nil || len(banks.GetInstitutions()) == 0 {
		log.Fatalf("no sandbox institution in CL: %v", err)
	}
	bank := banks.GetInstitutions()[0]
	created, err := c.Consents.CreateConsent(ctx, &consentv1.CreateConsentRequest{
		UserId:        user.GetUser().GetId(),
		InstitutionId: bank.GetId(),
		Products:      []string{"ACCOUNTS", "TRANSACTIONS"},
	})
	if err != nil {
		log.Fatal(err)
	}

	got, err := c.Consents.GetConsent(ctx, &consentv1.GetConsentRequest{Id: created.GetConsent().GetId()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(bank.GetProvider(), bank.GetCountry())
	fmt.Println(got.GetConsent().GetStatus())
	fmt.Println(got.GetConsent().GetProducts())
	// Output:
	// sandbox CL
	// CONSENT_STATUS_AWAITING_AUTHORISATION
	// [ACCOUNTS TRANSACTIONS]
}
