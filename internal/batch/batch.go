// Package batch coalesces calls from many goroutines into batched AWS
// requests: a batch is sent when it holds Max items or when the first item
// in it has waited Linger, whichever comes first. Each caller learns the
// outcome of its own item, so per-entry failures of a batch response reach
// exactly the callers they belong to.
//
// Backpressure: at most MaxFlushes batches are sent at once (as go-cloud's
// batcher bounds its handlers); batches beyond wait their turn in order,
// and at most MaxItems items are held (waiting or being sent) at a time:
// Submit waits for room beyond that. A slow service (an SQS brownout that
// makes DeleteMessageBatch take seconds) therefore holds a bounded number
// of goroutines and items however fast items arrive: the submitters wait,
// which for a consumer acknowledging messages means its handlers stay
// busy and it receives less, leaving the rest in the queue. Nothing is
// dropped.
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
	// MaxFlushes is the most batches sent at once; 0 means
	// DefaultMaxFlushes.
	MaxFlushes int
	// MaxItems is the most items held, waiting or being sent; Submit waits
	// for room beyond it. 0 means DefaultMaxItemsPerFlush × MaxFlushes × Max.
	MaxItems int
}

// Defaults of the backpressure bounds.
const (
	DefaultMaxFlushes       = 4
	DefaultMaxItemsPerFlush = 4
)

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
	// lingered is set once the oldest pending item has waited Linger (or
	// Flush or Close asked): the pending items go as soon as a flusher is
	// free, without waiting to fill a batch.
	lingered bool
	closed   bool
	// items counts the items submitted and not yet answered.
	items sync.WaitGroup
	// running counts the flusher goroutines, waiting those of them idle
	// (both under mu). A batch is taken from pending only when a flusher
	// is free for it, so a backlog goes out in full batches.
	running, waiting int
	// ready hands a batch to an idle flusher.
	ready chan []entry[T]
	// room holds a token per item held; Submit waits for one.
	room     chan struct{}
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
	if cfg.MaxFlushes <= 0 {
		cfg.MaxFlushes = DefaultMaxFlushes
	}
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItemsPerFlush * cfg.MaxFlushes * cfg.Max
	}
	cfg.MaxItems = max(cfg.MaxItems, cfg.Max)
	return &Batcher[T]{cfg: cfg, flush: flush, ready: make(chan []entry[T], cfg.MaxFlushes),
		room: make(chan struct{}, cfg.MaxItems), quit: make(chan struct{})}
}

// Submit queues item and returns a channel that receives its outcome once.
// When MaxItems items are held it first waits for room (for batches in
// flight to finish, each bounded by FlushTimeout).
func (b *Batcher[T]) Submit(item T) <-chan error {
	done := make(chan error, 1)
	b.room <- struct{}{}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		<-b.room
		done <- ErrClosed
		return done
	}
	b.items.Add(1)
	b.pending = append(b.pending, entry[T]{item: item, done: done})
	switch {
	case b.cfg.Linger <= 0:
		b.lingered = true
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(b.cfg.Linger, b.onTimer)
	}
	b.dispatchLocked()
	return done
}

// Do submits item and waits for its outcome or for ctx (the wait for room
// included: Submit's bound is FlushTimeout per batch ahead).
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
	b.timer = nil
	if len(b.pending) > 0 {
		b.lingered = true
		b.dispatchLocked()
	}
}

// due reports whether a batch should go now. b.mu must be held.
func (b *Batcher[T]) due() bool {
	return len(b.pending) >= b.cfg.Max || (len(b.pending) > 0 && b.lingered)
}

// takeLocked removes the next batch from pending. b.mu must be held.
func (b *Batcher[T]) takeLocked() []entry[T] {
	n := min(len(b.pending), b.cfg.Max)
	part := make([]entry[T], n)
	copy(part, b.pending)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	if len(b.pending) == 0 {
		b.lingered = false
		if b.timer != nil {
			b.timer.Stop()
			b.timer = nil
		}
	}
	return part
}

// dispatchLocked starts sending due batches while fewer than MaxFlushes
// are being sent. b.mu must be held.
func (b *Batcher[T]) dispatchLocked() {
	for b.due() && b.running-b.waiting < b.cfg.MaxFlushes {
		part := b.takeLocked()
		if b.waiting > 0 {
			b.waiting--
			b.ready <- part
			continue
		}
		b.running++
		go b.flusher(part)
	}
}

// flusherIdle is how long a flusher goroutine waits for another batch
// before it ends.
const flusherIdle = 5 * time.Second

// flusher sends part, then every batch due when it is done or handed to it
// while it waits. Every flush calls into the AWS SDK, whose call chains are
// deep: a goroutine kept for the next batch keeps its grown stack, where a
// new goroutine per batch would grow one from scratch every time.
func (b *Batcher[T]) flusher(part []entry[T]) {
	t := time.NewTimer(flusherIdle)
	defer t.Stop()
	for {
		b.send(part)
		b.mu.Lock()
		if b.due() {
			part = b.takeLocked()
			b.mu.Unlock()
			continue
		}
		b.waiting++
		b.mu.Unlock()
		t.Reset(flusherIdle)
		select {
		case part = <-b.ready:
			continue
		case <-t.C:
		case <-b.quit:
		}
		b.mu.Lock()
		select {
		case part = <-b.ready:
			// Handed a batch as the timer fired.
			b.mu.Unlock()
			continue
		default:
		}
		b.waiting--
		b.running--
		b.mu.Unlock()
		return
	}
}

func (b *Batcher[T]) send(batch []entry[T]) {
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
		<-b.room
		b.items.Done()
	}
}

// Flush sends whatever is pending now, without waiting for the linger (as
// soon as a flusher is free).
func (b *Batcher[T]) Flush() {
	b.mu.Lock()
	if len(b.pending) > 0 {
		b.lingered = true
		b.dispatchLocked()
	}
	b.mu.Unlock()
}

// Close sends what is pending, waits for every item's outcome, and refuses
// later items. It is idempotent.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	b.closed = true
	if len(b.pending) > 0 {
		b.lingered = true
		b.dispatchLocked()
	}
	b.mu.Unlock()
	b.items.Wait()
	b.quitOnce.Do(func() { close(b.quit) })
}
