package lambda

import "github.com/cloudcommerce/cloudcommerce/internal/config"

// Config is the function's configuration; package config defines it, reads
// it from the environment and holds its defaults.
type Config = config.Lambda

// Env lists every environment variable the function reads (config.LambdaEnv).
var Env = config.LambdaEnv

// FromEnv reads and checks the function's configuration (config.LambdaFromEnv).
func FromEnv(getenv func(string) string) (Config, error) { return config.LambdaFromEnv(getenv) }
