// Package providersim holds local simulators of Puente's upstream providers: HTTP servers that
// behave as each provider's documented API does (its own shapes, codes, tokens and webhooks, not
// Puente's), so that each adapter is tested end to end where no upstream can be reached. They
// start with make run beside the Sandbox and in the tests of services/puente/suite.
package providersim
