package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

var versionCmd = &command{
	name:    "version",
	summary: "print the module version, commit and Go version this binary was built from",
	setup: func(*flag.FlagSet) func(context.Context, env, []string) error {
		return func(_ context.Context, e env, _ []string) error {
			info, ok := debug.ReadBuildInfo()
			if !ok {
				return fmt.Errorf("read build info: this binary carries none")
			}
			printVersion(e.stdout, info)
			return nil
		}
	},
}

// printVersion writes the main module's path and version, the VCS commit
// (with its time, and "modified" for a dirty tree) and the Go version, as
// the build recorded them.
func printVersion(w io.Writer, info *debug.BuildInfo) {
	s := map[string]string{}
	for _, kv := range info.Settings {
		s[kv.Key] = kv.Value
	}
	commit := s["vcs.revision"]
	if commit == "" {
		commit = "unknown"
	}
	if t := s["vcs.time"]; t != "" {
		commit += " (" + t
		if s["vcs.modified"] == "true" {
			commit += ", modified"
		}
		commit += ")"
	}
	fmt.Fprintf(w, "module  %s %s\n", info.Main.Path, info.Main.Version)
	fmt.Fprintf(w, "commit  %s\n", commit)
	fmt.Fprintf(w, "go      %s\n", info.GoVersion)
}
