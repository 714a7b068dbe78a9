package terraform_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	appconfig "github.com/cloudcommerce/cloudcommerce/internal/config"
)

// The environment Terraform gives the worker's task and each Lambda
// function names only variables the binary declares (internal/config) and
// is accepted by the binary's own configuration reader, so no task or cold
// start fails on its configuration.
func TestTerraformEnvironmentIsWhatTheBinariesRead(t *testing.T) {
	c := cfg(t)
	plans := terraformPlans(t, c, iamRuns)
	check := func(what string, raw json.RawMessage, declared []appconfig.Var, read func(func(string) string) error) {
		var env map[string]string
		if err := json.Unmarshal(raw, &env); err != nil || len(env) == 0 {
			t.Fatalf("%s: no environment in the plan (%v): %s", what, err, raw)
		}
		names := map[string]bool{}
		for _, v := range declared {
			names[v.Name] = true
		}
		for name := range env {
			if !names[name] {
				t.Errorf("%s sets %s, which the binary does not read", what, name)
			}
		}
		if err := read(func(k string) string { return env[k] }); err != nil {
			t.Errorf("%s: the binary refuses the environment Terraform gives it: %v", what, err)
		}
	}
	worker := slices.IndexFunc(plans["ecs"], func(rc resourceChange) bool { return rc.Address == "output.worker_environment" })
	if worker < 0 {
		t.Fatal("the ecs plan has no output worker_environment")
	}
	check("the worker's task", plans["ecs"][worker].Change.After, appconfig.WorkerEnv, func(g func(string) string) error { _, err := appconfig.WorkerFromEnv(g); return err })
	for _, run := range []string{"lambda_stripe", "lambda_sandbox"} {
		n := 0
		for _, rc := range plans[run] {
			if rc.Type != "aws_lambda_function" {
				continue
			}
			var after struct {
				Environment []struct {
					Variables json.RawMessage `json:"variables"`
				} `json:"environment"`
			}
			if err := json.Unmarshal(rc.Change.After, &after); err != nil || len(after.Environment) != 1 {
				t.Fatalf("%s: %s: no environment block (%v)", run, rc.Address, err)
			}
			n++
			check(fmt.Sprintf("%s (%s)", rc.Address, run), after.Environment[0].Variables, appconfig.LambdaEnv, func(g func(string) string) error { _, err := appconfig.LambdaFromEnv(g); return err })
		}
		if n != len(c.topo.Queues) {
			t.Errorf("%s: %d functions in the plan, want one per stage", run, n)
		}
	}
}
