// Package reliability proves CloudCommerce's delivery guarantees under the
// failures a production queue worker meets: SIGKILL at random moments,
// network faults between the worker and AWS, duplicated and reordered
// events, a crowd racing for the last units, SIGTERM under load, poison
// messages and panicking handlers.
//
// Every suite is a Go test against the same endpoint as the rest of the
// tests: the in-process emulator by default, or LocalStack / AWS when
// AWS_ENDPOINT_URL names one. The suites drive the built worker binary as
// separate processes, and after each run check the invariants from the
// tables, the payment ledger and the queues (see invariants_test.go).
// Randomness is seeded (CLOUDCOMMERCE_TEST_SEED, else the clock) and the
// seed is printed with every failure. docs/guarantees.md lists each
// guarantee with the command that reruns its proof.
//
// The package has no code outside its tests.
package reliability
