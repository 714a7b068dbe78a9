// Package worker assembles the long-running worker: three stage consumers,
// the stuck-order sweep, the queue-depth sampler, the optional intake API
// and the ops endpoints (/metrics, /healthz, /readyz), with graceful
// shutdown. cmd/worker and cmd/devstack both run it.
//
// Files: worker.go (assembly), drain.go (running and the graceful drain),
// ops.go (health, readiness, metrics and console routes; the HTTP
// server), sweep.go (the stuck-order sweep and the queue-depth sampler),
// config.go (configuration).
package worker

import "github.com/cloudcommerce/cloudcommerce/internal/config"

// Config is the worker's configuration; package config defines it, reads
// it from the environment and holds its defaults.
type Config = config.Worker

// Env lists every environment variable the worker reads (config.WorkerEnv).
var Env = config.WorkerEnv

// FromEnv reads and checks the worker's configuration (config.WorkerFromEnv).
func FromEnv(getenv func(string) string) (Config, error) { return config.WorkerFromEnv(getenv) }

// Defaults returns the worker's configuration with every default filled in
// (config.WorkerDefaults).
func Defaults() Config { return config.WorkerDefaults() }
