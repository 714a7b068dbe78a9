// Package floor measures the floor under the worker's CPU per order: what
// aws-sdk-go-v2 itself costs per call, with the clients configured exactly
// as the worker configures them, against a local endpoint in another
// process that answers every operation an order makes with a canned,
// realistic response. Its benchmarks (floor_test.go) report CPU µs per call
// from getrusage (user + system, this process only, so the endpoint's share
// is left out) and allocations per call; BENCHMARKS.md multiplies them by
// the measured requests per order.
//
//	go test -run '^$' -bench . -benchtime 3000x ./bench/floor
package floor
