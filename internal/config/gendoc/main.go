// Command gendoc writes the configuration reference (docs/configuration.md)
// from internal/config's declarations; run it with go generate
// ./internal/config.
package main

import (
	"fmt"
	"os"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendoc <output file>")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[1], []byte(config.Markdown()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
