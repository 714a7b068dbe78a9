package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

// A command group with a positional argument, as `worker orders show ID`
// is: one *command value is all a new command needs.
func TestTreeRunsAGroupWithArguments(t *testing.T) {
	t.Parallel()
	var shown []string
	var asJSON bool
	orders := &command{name: "orders", summary: "look at orders", subs: []*command{
		{name: "show", args: "ID", nargs: 1, summary: "show one order",
			setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
				j := fs.Bool("json", false, "print JSON")
				return func(_ context.Context, _ env, args []string) error {
					shown, asJSON = args, *j
					return nil
				}
			}},
	}}
	r := &command{name: "worker", subs: []*command{orders}}
	var out bytes.Buffer
	e := env{stdout: &out, stderr: &out, getenv: noEnv}
	if err := r.execute(context.Background(), e, "worker", []string{"orders", "show", "--json", "ord-1"}); err != nil {
		t.Fatal(err)
	}
	if len(shown) != 1 || shown[0] != "ord-1" || !asJSON {
		t.Errorf("orders show got args %v json %v, want [ord-1] true", shown, asJSON)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"orders", "show"}, "missing ID"},
		{[]string{"orders", "show", "a", "b"}, `unexpected argument "b"`},
	} {
		err := r.execute(context.Background(), e, "worker", c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) || exitStatus(err) != 2 {
			t.Errorf("worker %s: got %v, want a usage error containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	out.Reset()
	if err := r.execute(context.Background(), e, "worker", []string{"orders", "--help"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "orders show ID") || !strings.Contains(out.String(), "--json") {
		t.Errorf("orders help does not list `orders show ID` and its flag:\n%s", out.String())
	}
}
