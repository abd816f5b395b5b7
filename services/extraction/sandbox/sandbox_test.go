package sandbox_test

import (
	"context"
	"testing"

	"puente.dev/pkg/sandboxdata"
	"puente.dev/services/extraction"
	"puente.dev/services/extraction/sandbox"
)

func TestAccountsTheUserDidNotShareAreLeftOut(t *testing.T) {
	ctx := context.Background()
	bank := sandboxdata.Snapshot(sandboxdata.Login{Seed: "user_accounts", Country: "CL"}, 0)
	checking, card := bank.Accounts[0].ID, bank.Accounts[1].ID
	link := func(state string) extraction.Link {
		return extraction.Link{InstitutionExternalID: "sandbox-cl-banco-arena", Country: "CL", State: []byte(state)}
	}
	p := sandbox.New()

	all, err := p.Accounts(ctx, link(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_accounts","phase":"linked"}`))
	if err != nil || len(all) != 2 {
		t.Fatalf("every account shared: %d accounts, %v", len(all), err)
	}
	some := link(`{"v":1,"inst":"sandbox-cl-banco-arena","user":"user_accounts","phase":"linked","skipped":["` + card + `"]}`)
	got, err := p.Accounts(ctx, some)
	if err != nil || len(got) != 1 || got[0].ID != checking {
		t.Fatalf("the card skipped: %+v, %v", got, err)
	}
	if _, err := p.Transactions(ctx, some, card); err == nil {
		t.Error("the skipped card's transactions are readable")
	}
}
