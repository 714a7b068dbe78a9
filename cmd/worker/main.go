// Command worker is the CloudCommerce production binary: it runs the three
// stage consumers (inventory, payment, shipping), provisions the topology,
// answers the container health check, manages dead letters and shows
// orders.
//
//	worker run            process orders until SIGTERM (the default)
//	worker provision      create the queues, rules, tables and topic (idempotent)
//	worker healthcheck    exit 0 when the worker on CLOUDCOMMERCE_OPS_ADDR is healthy
//	worker dlq list --stage S [--max N] [--json]
//	                      show dead-lettered messages without consuming them
//	worker dlq redrive --stage S [--max N]
//	                      move dead-lettered messages back to the stage queue
//	worker orders show ID [--json]
//	                      an order: status, lines, total, timeline, notifications
//	worker orders list --status S | --customer ID [--limit N] [--json]
//	                      orders in a status, or a customer's
//	worker version        print the module version, commit and Go version
//
// Exit status: 0 on success (help included), 1 when the command failed, 2
// when the command line was not understood (1 under `orders`, where a bad
// flag fails like an unknown order). Configuration comes from the
// environment only (package config); see `worker help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
)

func main() {
	err := run(context.Background(), os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(exitStatus(err))
	}
}

// exitStatus is 2 for a command line the tree did not accept, 1 for any
// other failure.
func exitStatus(err error) int {
	var u usageError
	if errors.As(err, &u) {
		if u.status != 0 {
			return u.status
		}
		return 2
	}
	return 1
}

// commands is the CLI tree under `worker`, in the order help lists it.
func commands() []*command {
	return []*command{runCmd, provisionCmd, migrateCmd, healthcheckCmd, dlqCmd, ordersCmd, versionCmd}
}

func root() *command {
	return &command{name: "worker", summary: "CloudCommerce order pipeline worker.", subs: commands()}
}

// run executes the command line args; no command means `run`.
func run(ctx context.Context, args []string, e env) error {
	r := root()
	if len(args) == 0 {
		args = []string{"run"}
	}
	if isHelp(args[0]) {
		return help(e.stdout, r, args[1:])
	}
	return r.execute(ctx, e, "worker", args)
}

// help prints the whole tree with every flag, exit statuses and the
// environment, or, given a command path (`worker help dlq list`), that
// command's help.
func help(w io.Writer, r *command, path []string) error {
	c, name := r, "worker"
	for _, p := range path {
		if c = c.find(p); c == nil {
			return usagef("help: unknown command %q (see 'worker help')", p)
		}
		name += " " + p
	}
	if c != r {
		c.help(w, name)
		return nil
	}
	fmt.Fprintln(w, "usage: worker [command] [flags]    (no command: run)")
	fmt.Fprintln(w, "\ncommands:")
	r.list(w, "")
	fmt.Fprintf(w, "  %-22s %s\n", "help [command]", "show this help, or one command's")
	fmt.Fprintln(w, "\nRun 'worker <command> --help' for one command's help.")
	fmt.Fprintln(w, "\nexit status: 0 success, 1 failure, 2 command line not understood (unknown command or flag, bad value; 1 under orders)")
	fmt.Fprintln(w, "\nenvironment:")
	for _, v := range config.WorkerEnv {
		d := v.Default
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(w, "  %-38s %-14s %s\n", v.Name, d, v.Meaning)
	}
	return nil
}
