// Package queue is the SQS adapter that feeds a stage handler: N long-pollers
// that reserve pool slots before receiving (never more messages in memory
// than free slots), a bounded pool of handlers with a per-message deadline,
// visibility extension for slow handlers, batched deletes (an entry that
// fails on the service's side is resubmitted), dead-lettering
// of permanent failures and back-off of transient ones through the
// visibility timeout.
//
// What becomes of a message after its handler is internal/delivery's one
// policy, which the Lambda adapter follows too: the consumer runs the
// handler in delivery's middleware stack (duration, deadline, panic
// recovery), classifies the result with delivery.Classify and settles it
// with a delivery.Settler, then deletes acknowledged and dead-lettered
// messages in batches. Its files: consumer.go (configuration and the
// pool), poll.go (receiving and handing back), settle.go (per-message
// handling and deletes), heartbeat.go (visibility extension).
package queue

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/batch"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Config configures one stage consumer. Zero values mean the defaults.
type Config struct {
	Stage    pipeline.Stage
	QueueURL string
	// DLQURL is where permanent failures are copied.
	DLQURL string
	// Concurrency is the pool size: handlers running at once. Default 16.
	Concurrency int
	// Pollers is the number of concurrent long-polls. Default 1: with a
	// receive linger one poller gathers the most messages per receive; add
	// pollers only when one cannot keep up (receives come back full).
	Pollers int
	// MaxReceive is the most messages one receive asks for (1..10).
	// Default 10; 1 turns receive batching off.
	MaxReceive int
	// WaitTime is the long-poll wait. Default 20s.
	WaitTime time.Duration
	// Visibility is how long a received message stays hidden: each receive
	// asks SQS for it (in place of the queue's own timeout), and handlers
	// still running at half of it get their message extended by it. A
	// short one makes a lost receive (a response cut on the way) cost
	// seconds instead of the queue's timeout. Default 10s, as the worker's.
	Visibility time.Duration
	// HandlerTimeout bounds one handler run. Default 20s.
	HandlerTimeout time.Duration
	// RetryBase and RetryMax shape the back-off of transient failures:
	// min(RetryMax, RetryBase·2^(receives-1)) with full jitter in its upper
	// half. Defaults 1s and 5m.
	RetryBase, RetryMax time.Duration
	// DeferBase is the first hand-back of an event a newer release wrote,
	// and MaxReceives the queue's maxReceiveCount: together they shape the
	// hand-back (delivery.DeferDelay). Defaults 5s and 0 (unknown: every
	// hand-back holds the message for delivery.DeferWindow).
	DeferBase   time.Duration
	MaxReceives int
	// DeleteBatch is the most receipts per DeleteMessageBatch (1 disables
	// batching); DeleteLinger how long a delete waits for company.
	// Defaults 10 and 100ms; a negative linger turns it off. Deletes never hold up a handler (the slot is
	// free once the handler returns), so a longer linger costs nothing but
	// a later acknowledgement.
	DeleteBatch  int
	DeleteLinger time.Duration
	// ReceiveLinger is how long a poller waits before its next receive
	// after one that came back with some messages but fewer than it asked
	// for (it asks for as many as there are free slots, up to MaxReceive),
	// so that messages gather in the queue and the next receive (and
	// the deletes and events that follow it) carries more. A receive that
	// found nothing long-polls as usual and a full one is followed at once,
	// so an idle queue costs nothing extra and a busy one never waits. It
	// adds at most ReceiveLinger to a message's time in the queue. Default
	// 50ms; a negative value turns it off.
	ReceiveLinger time.Duration
	// Middleware wraps the handler inside delivery.Stack, next to it (the
	// worker adds tracing here). None by default.
	Middleware []delivery.Middleware
}

// defaults fills zero fields with the worker's defaults, which package
// config defines; a negative linger turns that linger off.
func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = config.DefaultConcurrency
	}
	if c.Pollers <= 0 {
		c.Pollers = config.DefaultPollers
	}
	if c.MaxReceive <= 0 || c.MaxReceive > 10 {
		c.MaxReceive = config.DefaultMaxReceive
	}
	if c.WaitTime <= 0 {
		c.WaitTime = config.DefaultWaitTime
	}
	if c.Visibility <= 0 {
		c.Visibility = config.DefaultVisibility
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = config.DefaultHandlerTimeout
	}
	if c.RetryBase <= 0 {
		c.RetryBase = config.DefaultRetryBase
	}
	if c.DeferBase <= 0 {
		c.DeferBase = config.DefaultDeferBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = config.DefaultRetryMax
	}
	if c.DeleteBatch <= 0 || c.DeleteBatch > 10 {
		c.DeleteBatch = config.DefaultDeleteBatch
	}
	if c.ReceiveLinger < 0 {
		c.ReceiveLinger = 0
	} else if c.ReceiveLinger == 0 {
		c.ReceiveLinger = config.DefaultReceiveLinger
	}
	if c.DeleteLinger < 0 {
		c.DeleteLinger = 0
	} else if c.DeleteLinger == 0 {
		c.DeleteLinger = config.DefaultDeleteLinger
	}
}

// ErrShutdown is the cause given to handlers cancelled because the worker's
// shutdown deadline passed.
var ErrShutdown = errors.New("worker shutdown deadline passed")

// Consumer feeds one stage queue to a handler.
type Consumer struct {
	cfg     Config
	sqs     *sqs.Client
	handler pipeline.Handler // wrapped in delivery's middleware
	settler *delivery.Settler
	log     *zap.Logger
	m       *metrics.Metrics
	stage   string

	// Children of the metrics used for every message or receive, looked
	// up once.
	queueOldest  prometheus.Gauge
	received     prometheus.Counter
	receiveBatch prometheus.Observer

	slots    chan struct{}
	work     chan types.Message
	inFlight atomic.Int64
	deleter  *batch.Batcher[string]
	active   sync.Map // message id → *tracked
	fatal    atomic.Pointer[error]
}

type tracked struct {
	receipt  string
	due      time.Time // next visibility extension
	deadline time.Time
}

// New returns a consumer of h, a plain handler: the consumer wraps it in
// delivery.Stack (duration metric, HandlerTimeout, panic recovery, then
// cfg.Middleware). The
// metrics must not be shared with another consumer of the same stage.
func New(client *sqs.Client, cfg Config, h pipeline.Handler, log *zap.Logger, m *metrics.Metrics) *Consumer {
	cfg.defaults()
	c := &Consumer{cfg: cfg, sqs: client, handler: delivery.Chain(h, delivery.Stack(cfg.Stage, cfg.HandlerTimeout, m, cfg.Middleware...)...),
		log: log.With(zap.String("stage", string(cfg.Stage))), m: m,
		stage: string(cfg.Stage), slots: make(chan struct{}, cfg.Concurrency), work: make(chan types.Message)}
	c.settler = &delivery.Settler{SQS: client, Stage: cfg.Stage, QueueURL: cfg.QueueURL, DLQURL: cfg.DLQURL,
		RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax, DeferBase: cfg.DeferBase, MaxReceives: cfg.MaxReceives, Metrics: m}
	c.queueOldest, c.received, c.receiveBatch = m.QueueOldest.WithLabelValues(c.stage), m.Received.WithLabelValues(c.stage), m.BatchSize.WithLabelValues("receive")
	deletes := m.BatchSize.WithLabelValues("delete")
	c.deleter = batch.New(batch.Config{Max: cfg.DeleteBatch, Linger: cfg.DeleteLinger,
		OnFlush: func(n int) { deletes.Observe(float64(n)) }}, c.deleteBatch)
	m.PoolSize.WithLabelValues(c.stage).Set(float64(cfg.Concurrency))
	m.InFlight(cfg.Stage, func() float64 { return float64(c.inFlight.Load()) })
	return c
}

// Healthy returns nil, or the fatal error (queue missing, access denied)
// that stops this consumer from receiving.
func (c *Consumer) Healthy() error {
	if p := c.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Run receives until recv is done, handling messages on contexts derived
// from work, then waits for every handler to return and flushes pending
// deletes. Cancel work (with a cause) to abandon handlers still running
// after the shutdown deadline; their messages come back after their
// visibility timeout.
func (c *Consumer) Run(recv, work context.Context) {
	var handlers sync.WaitGroup
	var pollers sync.WaitGroup
	hbDone := make(chan struct{})
	go c.heartbeat(hbDone)
	// The pool: Concurrency long-lived handler goroutines. Reusing them
	// (rather than a goroutine per message) keeps their grown stacks, which
	// the SDK's deep call chains would otherwise grow from scratch for
	// every message.
	for range c.cfg.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			for msg := range c.work {
				c.process(work, msg)
				c.inFlight.Add(-1)
				<-c.slots
			}
		}()
	}
	for i := 0; i < c.cfg.Pollers; i++ {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			c.poll(recv, work)
		}()
	}
	pollers.Wait()
	close(c.work)
	handlers.Wait()
	close(hbDone)
	c.deleter.Close()
}
