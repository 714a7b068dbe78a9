package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/queue"
)

// ErrShutdownDeadline is returned by Run when handlers were still running
// at the shutdown deadline and had to be cancelled.
var ErrShutdownDeadline = errors.New("shutdown deadline passed with handlers still running")

// Run processes messages until ctx is cancelled (SIGTERM), then drains:
// it stops receiving, lets in-flight handlers finish within the shutdown
// timeout, hands back messages received but not started, flushes batched
// deletes, events and notifications, and returns nil — or
// ErrShutdownDeadline if handlers had to be cancelled.
func (w *Worker) Run(ctx context.Context) error {
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(nil)
	var wg sync.WaitGroup
	for st, c := range w.consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Run(ctx, work)
			w.log.Info("stage consumer stopped", zap.String("stage", string(st)))
		}()
	}
	var bg sync.WaitGroup
	if w.cfg.SweepInterval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); w.sweepLoop(ctx) }()
	}
	if w.cfg.QueueSampleInterval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); w.sampleLoop(ctx) }()
	}
	w.started.Store(true)
	w.m.Ready.Set(1)
	w.log.Info("worker running", zap.String("prefix", w.cfg.Prefix))

	<-ctx.Done()
	w.draining.Store(true)
	w.m.Ready.Set(0)
	w.log.Info("draining: receiving stopped, finishing in-flight work", zap.Duration("shutdown_timeout", w.cfg.ShutdownTimeout))
	done := make(chan struct{})
	go func() { wg.Wait(); bg.Wait(); close(done) }()
	var result error
	timer := time.NewTimer(w.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cancelWork(queue.ErrShutdown)
		result = ErrShutdownDeadline
		w.log.Error("shutdown deadline passed; cancelling handlers, their messages will be redelivered")
		<-done
	}
	w.comp.Close()
	w.log.Info("worker stopped")
	return result
}
