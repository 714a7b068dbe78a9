package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/cloudcommerce/cloudcommerce/internal/store"
)

// migrateCmd gives every stored order the index keys of the current
// layout (see store.Migrate and docs/deploying.md).
var migrateCmd = &command{
	name:    "migrate",
	summary: "give stored orders the index keys of this release (idempotent; resumable with --resume)",
	setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
		resume := fs.String("resume", "", "resume after the order `ID` a previous run reported")
		return func(ctx context.Context, e env, _ []string) error {
			st, err := envStore(ctx, e)
			if err != nil {
				return err
			}
			p, err := st.Migrate(ctx, *resume, func(p store.MigrateProgress) {
				if p.Cursor != "" {
					fmt.Fprintf(e.stderr, "migrate: %d orders scanned, %d re-indexed; resume with --resume %s\n", p.Scanned, p.Reindexed, p.Cursor)
				}
			})
			if err != nil {
				if p.Cursor != "" {
					return fmt.Errorf("%w (resume with --resume %s)", err, p.Cursor)
				}
				return err
			}
			fmt.Fprintf(e.stdout, "migrate: done: %d orders scanned, %d re-indexed\n", p.Scanned, p.Reindexed)
			return nil
		}
	},
}
