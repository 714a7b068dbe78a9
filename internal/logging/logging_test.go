package logging_test

import (
	"testing"

	smithylogging "github.com/aws/smithy-go/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cloudcommerce/cloudcommerce/internal/logging"
)

func TestSDKMapsClassificationsToLevels(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := logging.SDK(zap.New(core))
	l.Logf(smithylogging.Warn, "failed to discard remaining HTTP response body, this may affect connection reuse: %v", "read tcp: use of closed network connection")
	l.Logf(smithylogging.Debug, "retrying request %s/%s, attempt %d", "SQS", "ReceiveMessage", 2)
	l.Logf(smithylogging.Classification("NOTE"), "unclassified")

	want := []struct {
		level zapcore.Level
		text  string
	}{
		{zapcore.WarnLevel, "failed to discard remaining HTTP response body, this may affect connection reuse: read tcp: use of closed network connection"},
		{zapcore.DebugLevel, "retrying request SQS/ReceiveMessage, attempt 2"},
		{zapcore.InfoLevel, "unclassified"},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e.Level != w.level || e.Message != "aws sdk" || e.LoggerName != "aws" || e.ContextMap()["sdk_message"] != w.text {
			t.Errorf("entry %d = %s %q logger %q %v, want %s \"aws sdk\" logger \"aws\" sdk_message=%q",
				i, e.Level, e.Message, e.LoggerName, e.ContextMap(), w.level, w.text)
		}
	}
}

func TestSDKRespectsTheLevel(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	l := logging.SDK(zap.New(core))
	l.Logf(smithylogging.Debug, "request %v", "dump")
	l.Logf(smithylogging.Warn, "kept")
	if n := logs.Len(); n != 1 || logs.All()[0].ContextMap()["sdk_message"] != "kept" {
		t.Errorf("at warn level got %v, want only the warning", logs.All())
	}
}
