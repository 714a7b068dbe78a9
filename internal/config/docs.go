package config

import (
	"fmt"
	"strings"
)

//go:generate go run ./gendoc ../../docs/configuration.md

// Markdown is the configuration reference, docs/configuration.md, rendered
// from the declarations (WorkerEnv, LambdaEnv). `go generate
// ./internal/config` rewrites the file; a test fails when it differs.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from the declarations in internal/config by
     go generate ./internal/config; do not edit. -->

The worker and the Lambda function read only their environment, through
one package, internal/config, which declares every variable once: its name,
default and meaning. Values are validated at start and every problem is
reported at once. ` + "`worker help`" + ` prints the worker's table, ` + "`bootstrap help`" + ` the
function's.

## Worker

`)
	table(&b, WorkerEnv)
	b.WriteString(`
## Lambda function (cmd/lambda)

`)
	table(&b, LambdaEnv)
	return b.String()
}

func table(b *strings.Builder, vs []Var) {
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range vs {
		d := "–"
		if v.Default != "" {
			d = "`" + v.Default + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", v.Name, d, strings.ReplaceAll(v.Meaning, "|", `\|`))
	}
}
