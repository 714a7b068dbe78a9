package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// A command is one node of the CLI tree: a group of subcommands (dlq) or
// a leaf that runs (dlq list). A new command is one file declaring a
// *command, listed once in commands() in main.go.
type command struct {
	name    string
	args    string // positional arguments for the usage line, e.g. "ID"
	summary string
	// detail, if set, is printed under the summary in the leaf's help.
	detail string
	// setup declares the leaf's flags on fs and returns the function that
	// runs it with the positional arguments left after the flags. Nil for
	// a group.
	setup func(fs *flag.FlagSet) func(ctx context.Context, e env, args []string) error
	// nargs is how many positional arguments the leaf takes (named in args).
	nargs int
	subs  []*command
	// usageExit, when not 0, is the exit status of a command line under
	// this command that the tree does not accept (2 otherwise).
	usageExit int
}

// env is what a command may use of the process: its output streams and
// its environment (read only through package config).
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// usageError is a command line the tree does not accept: an unknown
// command or flag, a bad flag value, a missing or extra argument. The
// process exits with status 2 for it (or the usageExit of the command it
// is under), and 1 for every other failure.
type usageError struct {
	err error
	// status is the exit status; 0 means 2.
	status int
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{err: fmt.Errorf(format, args...)} }

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// execute runs the command named by args under c; path is c's full name.
func (c *command) execute(ctx context.Context, e env, path string, args []string) error {
	err := c.dispatch(ctx, e, path, args)
	var u usageError
	if c.usageExit != 0 && errors.As(err, &u) && u.status == 0 {
		u.status = c.usageExit
		return u
	}
	return err
}

func (c *command) dispatch(ctx context.Context, e env, path string, args []string) error {
	if c.setup == nil {
		if len(args) == 0 {
			return usagef("%s needs a command: %s (see '%s --help')", path, c.subNames(), path)
		}
		if isHelp(args[0]) {
			c.help(e.stdout, path)
			return nil
		}
		sub := c.find(args[0])
		if sub == nil {
			return usagef("unknown command %q for %s (see '%s --help')", strings.Join(append(strings.Fields(path)[1:], args[0]), " "), path, path)
		}
		return sub.execute(ctx, e, path+" "+sub.name, args[1:])
	}
	fs := c.flags(path)
	run := c.setup(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.help(e.stdout, path)
			return nil
		}
		return usagef("%s: %v (see '%s --help')", path, err, path)
	}
	switch {
	case fs.NArg() > c.nargs:
		return usagef("%s: unexpected argument %q (see '%s --help')", path, fs.Arg(c.nargs), path)
	case fs.NArg() < c.nargs:
		return usagef("%s: missing %s (see '%s --help')", path, c.args, path)
	}
	return run(ctx, e, fs.Args())
}

// flags returns a quiet flag set for c: the tree prints help and errors.
func (c *command) flags(path string) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func (c *command) find(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *command) subNames() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// help prints c's usage: a leaf's flags, or a group's every leaf with
// its flags.
func (c *command) help(w io.Writer, path string) {
	if c.setup != nil {
		fmt.Fprintf(w, "usage: %s%s\n\n%s\n", path, c.synopsis(path), c.summary)
		if c.detail != "" {
			fmt.Fprintf(w, "\n%s\n", c.detail)
		}
		if f := c.flagLines(path, "  "); f != "" {
			fmt.Fprintf(w, "\nflags:\n%s", f)
		}
		return
	}
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\n%s\n\ncommands:\n", path, c.summary)
	// Full names under the root: "dlq list", not "list".
	_, under, _ := strings.Cut(path, " ")
	c.list(w, under)
	fmt.Fprintf(w, "\nRun '%s <command> --help' for one command's flags.\n", path)
}

// list prints every leaf under c, with its flags, one line each.
func (c *command) list(w io.Writer, prefix string) {
	for _, s := range c.subs {
		name := strings.TrimSpace(prefix + " " + s.name)
		if s.setup == nil {
			s.list(w, name)
			continue
		}
		fmt.Fprintf(w, "  %-22s %s\n", name+s.argNames(), s.summary)
		fmt.Fprint(w, s.flagLines(name, "      "))
	}
}

func (c *command) argNames() string {
	if c.args == "" {
		return ""
	}
	return " " + c.args
}

func (c *command) synopsis(path string) string {
	s := ""
	if c.flagLines(path, "") != "" {
		s = " [flags]"
	}
	return s + c.argNames()
}

func (c *command) flagLines(path, indent string) string {
	fs := c.flags(path)
	c.setup(fs)
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if value != "" {
			name += " " + value
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(&b, "%s%-16s %s\n", indent, name, usage)
	})
	return b.String()
}
