// Package logging builds the production zap logger every binary uses: JSON
// to stderr, ISO 8601 times, the level named by configuration. Callers log
// ids (order_id, stage, message_id, receive_count), never customer contact
// details or payment tokens. SDK adapts such a logger for the AWS SDK, so
// its own lines are JSON with a level too.
package logging

import (
	"fmt"

	smithylogging "github.com/aws/smithy-go/logging"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns the production JSON logger at level (debug, info, warn or
// error).
func New(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// SDK adapts log to the AWS SDK's logger interface (aws.Config.Logger), so
// the SDK's own lines (a response body it could not drain, a retry it
// logged, request traces when a client log mode asks for them) come out as
// JSON with a level like every other line, instead of raw on stderr. The
// SDK's classifications map to zap levels: Warn to warn, Debug to debug,
// anything else to info. The message is constant ("aws sdk"); the SDK's
// text is in the "sdk_message" field, under the logger name "aws".
func SDK(log *zap.Logger) smithylogging.Logger {
	return sdkLogger{log: log.Named("aws")}
}

type sdkLogger struct{ log *zap.Logger }

func (l sdkLogger) Logf(c smithylogging.Classification, format string, v ...any) {
	lvl := zapcore.InfoLevel
	switch c {
	case smithylogging.Warn:
		lvl = zapcore.WarnLevel
	case smithylogging.Debug:
		lvl = zapcore.DebugLevel
	}
	if ce := l.log.Check(lvl, "aws sdk"); ce != nil {
		ce.Write(zap.String("sdk_message", fmt.Sprintf(format, v...)))
	}
}
