package main

import (
	"context"
	"flag"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/ops/health"
)

var healthcheckCmd = &command{
	name:    "healthcheck",
	summary: "exit 0 when the worker on CLOUDCOMMERCE_OPS_ADDR answers /healthz (for container health checks)",
	setup: func(*flag.FlagSet) func(context.Context, env, []string) error {
		return func(ctx context.Context, e env, _ []string) error {
			return health.Check(ctx, config.OpsAddr(e.getenv))
		}
	},
}
