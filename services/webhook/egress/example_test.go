package egress_test

import (
	"errors"
	"fmt"

	"puente.dev/services/webhook/egress"
)

// An endpoint URL is checked when a customer registers it. The delivery worker then sends through
// policy.Client, which checks every address it connects to, and whose refusals match
// ErrForbiddenAddress too.
func ExamplePolicy_CheckURL() {
	policy := egress.Policy{} // production: public addresses over https only

	for _, raw := range []string{
		"https://hooks.example.com/puente",
		"https://0x7f000001/",
		"https://[::ffff:169.254.169.254]/",
		"https://127.1/",
		"http://hooks.example.com/puente",
	} {
		err := policy.CheckURL(raw)
		switch {
		case err == nil:
			fmt.Println("ok:", raw)
		case errors.Is(err, egress.ErrForbiddenAddress):
			fmt.Println("forbidden:", err)
		default:
			fmt.Println("invalid:", err)
		}
	}

	// Output:
	// ok: https://hooks.example.com/puente
	// forbidden: url: host 0x7f000001 (127.0.0.1) is a loopback address
	// forbidden: url: host ::ffff:169.254.169.254 is a link-local address (cloud metadata) (IPv4-mapped 169.254.169.254)
	// forbidden: url: host 127.1 (127.0.0.1) is a loopback address
	// invalid: url: scheme http is not allowed, use https
}
