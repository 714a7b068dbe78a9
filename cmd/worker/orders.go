package main

import (
	"context"
	"flag"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/orders"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// ordersCmd looks at orders. Every mistake under it (a bad flag included)
// exits 1 with the reason, like an unknown order.
var ordersCmd = &command{
	name:      "orders",
	summary:   "look at orders: one in full, or a list by status or by customer",
	usageExit: 1,
	subs: []*command{
		{
			name:    "show",
			args:    "ID",
			nargs:   1,
			summary: "show an order: status, lines, total, tracking number or reason, timeline, notifications",
			setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
				asJSON := fs.Bool("json", false, "print JSON instead of text")
				return func(ctx context.Context, e env, args []string) error {
					c, err := ordersCommand(ctx, e)
					if err != nil {
						return err
					}
					return c.Show(ctx, args[0], *asJSON)
				}
			},
		},
		{
			name:    "list",
			summary: "list orders in a status (most recently changed first) or of a customer (most recently placed first)",
			setup: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
				status := fs.String("status", "", "list orders in status `S`: PLACED, RESERVED, PAID, SHIPPED, REJECTED, PAYMENT_FAILED or CANCELLED")
				customer := fs.String("customer", "", "list the orders of customer `ID`")
				limit := fs.Int("limit", orders.DefaultList, "list at most `N` orders (1..1000)")
				asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
				return func(ctx context.Context, e env, _ []string) error {
					switch {
					case (*status == "") == (*customer == ""):
						return usagef("orders list: give exactly one of --status S and --customer ID (see 'worker orders list --help')")
					case *limit < 1 || *limit > orders.MaxList:
						return usagef("--limit %d: want 1 to %d", *limit, orders.MaxList)
					case *status != "" && !pipeline.Status(*status).Valid():
						return usagef("--status %q: want PLACED, RESERVED, PAID, SHIPPED, REJECTED, PAYMENT_FAILED or CANCELLED", *status)
					}
					c, err := ordersCommand(ctx, e)
					if err != nil {
						return err
					}
					if *status != "" {
						return c.ListByStatus(ctx, pipeline.Status(*status), *limit, *asJSON)
					}
					return c.ListByCustomer(ctx, *customer, *limit, *asJSON)
				}
			},
		},
	},
}

// ordersCommand reads the orders table named by the environment.
func ordersCommand(ctx context.Context, e env) (orders.Command, error) {
	st, err := envStore(ctx, e)
	if err != nil {
		return orders.Command{}, err
	}
	return orders.Command{Store: st, Out: e.stdout}, nil
}

// envStore is the store on the tables the environment names, writing in
// the order format it sets.
func envStore(ctx context.Context, e env) (*store.Store, error) {
	cfg, err := config.WorkerFromEnv(e.getenv)
	if err != nil {
		return nil, err
	}
	format, err := store.ParseFormat(cfg.OrderFormat)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconf.Load(ctx, config.AWS(e.getenv))
	if err != nil {
		return nil, err
	}
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	names := topo.Names(cfg.Prefix)
	return store.NewFormat(awsconf.DynamoDB(awsCfg), store.Tables{Orders: names.Tables["orders"], Inventory: names.Tables["inventory"], Idempotency: names.Tables["idempotency"]}, format), nil
}
