// Package batch coalesces calls from many goroutines into batched AWS
// requests: a batch is sent when it holds Max items or when the first item
// in it has waited Linger, whichever comes first. Each caller learns the
// outcome of its own item, so per-entry failures of a batch response reach
// exactly the callers they belong to.
package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned for items submitted after Close.
var ErrClosed = errors.New("batcher is closed")

// FlushFunc sends one batch. It returns one error per item (nil for
// success), or a single error for the whole batch (as a slice of length 1 or
// by returning err for every item). ctx bounds the request.
type FlushFunc[T any] func(ctx context.Context, items []T) []error

// Config tunes a batcher.
type Config struct {
	// Max is the largest batch; 0 means 10 (the SQS, EventBridge and SNS
	// limit). 1 disables batching.
	Max int
	// Linger is how long the first item of a batch waits for company; 0
	// sends at once whatever is pending.
	Linger time.Duration
	// FlushTimeout bounds each request; 0 means 10s.
	FlushTimeout time.Duration
	// OnFlush, if set, is told the size of every batch sent (for metrics).
	OnFlush func(size int)
}

type entry[T any] struct {
	item T
	done chan error
}

// Batcher batches items of type T. Safe for concurrent use.
type Batcher[T any] struct {
	cfg   Config
	flush FlushFunc[T]

	mu      sync.Mutex
	pending []entry[T]
	timer   *time.Timer
	closed  bool
	wg      sync.WaitGroup
	// idle hands a batch to a flusher goroutine waiting for one; quit
	// ends the waiting ones at Close.
	idle     chan []entry[T]
	quit     chan struct{}
	quitOnce sync.Once
}

// New returns a batcher that sends batches with flush.
func New[T any](cfg Config, flush FlushFunc[T]) *Batcher[T] {
	if cfg.Max <= 0 {
		cfg.Max = 10
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 10 * time.Second
	}
	return &Batcher[T]{cfg: cfg, flush: flush, idle: make(chan []entry[T]), quit: make(chan struct{})}
}

// Submit queues item and returns a channel that receives its outcome once.
func (b *Batcher[T]) Submit(item T) <-chan error {
	done := make(chan error, 1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		done <- ErrClosed
		return done
	}
	b.pending = append(b.pending, entry[T]{item: item, done: done})
	switch {
	case len(b.pending) >= b.cfg.Max || b.cfg.Linger <= 0:
		b.sendLocked()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(b.cfg.Linger, b.onTimer)
	}
	b.mu.Unlock()
	return done
}

// Do submits item and waits for its outcome or for ctx.
func (b *Batcher[T]) Do(ctx context.Context, item T) error {
	select {
	case err := <-b.Submit(item):
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (b *Batcher[T]) onTimer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) > 0 {
		b.sendLocked()
	}
}

// sendLocked starts sending the pending items. b.mu must be held.
func (b *Batcher[T]) sendLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	batch := b.pending
	b.pending = nil
	for len(batch) > 0 {
		n := min(len(batch), b.cfg.Max)
		part := batch[:n:n]
		batch = batch[n:]
		b.wg.Add(1)
		select {
		case b.idle <- part:
		default:
			go b.flusher(part)
		}
	}
}

// flusherIdle is how long a flusher goroutine waits for another batch
// before it ends.
const flusherIdle = 5 * time.Second

// flusher sends part, then the batches handed to it while it waits. Every
// flush calls into the AWS SDK, whose call chains are deep: a goroutine
// kept for the next batch keeps its grown stack, where a new goroutine per
// batch would grow one from scratch every time. Flushes still never wait
// for each other: a batch no idle flusher takes gets a goroutine of its
// own.
func (b *Batcher[T]) flusher(part []entry[T]) {
	t := time.NewTimer(flusherIdle)
	defer t.Stop()
	for {
		b.send(part)
		t.Reset(flusherIdle)
		select {
		case part = <-b.idle:
		case <-t.C:
			return
		case <-b.quit:
			return
		}
	}
}

func (b *Batcher[T]) send(batch []entry[T]) {
	defer b.wg.Done()
	if b.cfg.OnFlush != nil {
		b.cfg.OnFlush(len(batch))
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.FlushTimeout)
	defer cancel()
	items := make([]T, len(batch))
	for i, e := range batch {
		items[i] = e.item
	}
	errs := b.flush(ctx, items)
	for i, e := range batch {
		switch {
		case len(errs) == len(batch):
			e.done <- errs[i]
		case len(errs) == 1:
			e.done <- errs[0]
		default:
			e.done <- nil
		}
	}
}

// Flush sends whatever is pending now, without waiting for the linger.
func (b *Batcher[T]) Flush() {
	b.mu.Lock()
	if len(b.pending) > 0 {
		b.sendLocked()
	}
	b.mu.Unlock()
}

// Close sends what is pending, waits for every batch in flight, and refuses
// later items. It is idempotent.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	b.closed = true
	if len(b.pending) > 0 {
		b.sendLocked()
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.quitOnce.Do(func() { close(b.quit) })
}
