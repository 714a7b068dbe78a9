// Package lambda runs the pipeline's stage handlers in AWS Lambda, behind
// SQS event source mappings, as the second compute target next to the ECS
// worker. It runs exactly the handlers the worker runs
// (pipeline.Service.Handler), in the same middleware, and settles their
// results by the same policy (internal/delivery):
//
//   - nil error: the record succeeded; the event source mapping deletes it;
//   - pipeline.PermanentError: the body is copied to the stage's DLQ with
//     the dead-letter attributes (delivery.Attr*), and the record counts
//     as succeeded so the mapping deletes it — never retried;
//   - an event a newer release wrote (pipeline.DeferredError): the
//     record is handed back as a retry is, with delivery.DeferDelay's
//     longer back-off (see docs/deploying.md);
//   - any other error, or a panic: the record is reported in
//     BatchItemFailures (the mapping must have ReportBatchItemFailures on),
//     so only it comes back, after an exponential back-off set with
//     ChangeMessageVisibility; after the queue's maxReceiveCount SQS moves it
//     to the DLQ itself.
//
// The records of a batch are handled concurrently, at most
// config.Lambda's Concurrency at once, each under a deadline, all cancelled
// its DeadlineMargin before the invocation's own deadline. The
// invocation returns only after every handler has returned; since the bus
// publisher and the notifier return from Publish and Notify only once
// their batch is sent, every event and notification of the invocation is
// out before Lambda may freeze the process.
//
// What the worker does and the function does not: long polling and
// deletes (the mapping does both), visibility heartbeats (the function
// timeout bounds a batch; the queue's visibility timeout must be at least
// six times it), the stuck-order sweep and the queue-depth sampler (run
// the worker's sweep on a schedule, or rely on CloudWatch's SQS metrics),
// and the Prometheus endpoint.
package lambda

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/store"
	"github.com/cloudcommerce/cloudcommerce/internal/wire"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Deps are what the function is given rather than builds: the one
// dependency struct of the worker and the Lambda adapter (Notifications
// and Tracing are not used here).
type Deps = wire.Deps

// Handler serves SQS events of the stage queues. Build it once per
// execution environment (at cold start) with New; Handle is safe for
// concurrent use, though Lambda sends one event at a time.
type Handler struct {
	cfg  config.Lambda
	log  *zap.Logger
	sqs  *sqs.Client
	comp *wire.Components

	// handlers are the stage handlers in delivery's middleware, settlers
	// carry out delivery's decisions on each stage's queue.
	handlers map[pipeline.Stage]pipeline.Handler
	settlers map[pipeline.Stage]*delivery.Settler
	byQueue  map[string]pipeline.Stage // queue name → stage
}

// New builds the handler: it resolves the queue and DLQ URLs of the
// stages it serves (failing loudly if they do not exist), reads the Stripe
// key from Secrets Manager when configured, and wires the service. cfg is
// filled with its defaults and validated.
func New(ctx context.Context, cfg config.Lambda, d Deps) (*Handler, error) {
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	names := topo.Names(cfg.Prefix)
	h := &Handler{cfg: cfg, log: d.Log, sqs: sqs.NewFromConfig(d.AWS), handlers: map[pipeline.Stage]pipeline.Handler{},
		settlers: map[pipeline.Stage]*delivery.Settler{}, byQueue: map[string]pipeline.Stage{}}
	stages := pipeline.Stages
	if cfg.Stage != "" {
		stages = []pipeline.Stage{cfg.Stage}
	}
	queues, err := names.ResolveQueues(ctx, h.sqs, stages...)
	if err != nil {
		return nil, fmt.Errorf("%w (check CLOUDCOMMERCE_PREFIX and the function's sqs:GetQueueUrl permission)", err)
	}
	for _, st := range stages {
		h.byQueue[names.Queues[st]] = st
		h.settlers[st] = &delivery.Settler{SQS: h.sqs, Stage: st, QueueURL: queues[st].URL, DLQURL: queues[st].DLQURL,
			RetryBase: cfg.RetryBase, RetryMax: cfg.RetryMax, DeferBase: cfg.DeferBase, MaxReceives: topo.MaxReceives(st), Metrics: d.Metrics}
	}
	format, err := store.ParseFormat(cfg.OrderFormat)
	if err != nil {
		return nil, err
	}
	sc := wire.Config{Names: names, TopicARN: cfg.TopicARN, Batching: cfg.BatchingOn(), Linger: cfg.BatchLinger,
		PublishBatch: cfg.PublishBatch, PaymentGateway: cfg.PaymentGateway, OrderFormat: format, StuckAfter: cfg.StuckAfter}
	if cfg.PaymentGateway == "stripe" && d.Payments == nil {
		key := cfg.StripeSecretKey
		if cfg.StripeSecretARN != "" {
			if key, err = wire.StripeKeyFromSecret(ctx, d.AWS, cfg.StripeSecretARN); err != nil {
				return nil, err
			}
		}
		sc.Stripe = stripe.Config{SecretKey: key}
		if err := sc.Stripe.Validate(); err != nil {
			return nil, fmt.Errorf("the Stripe key (from %s): %w", stripeKeySource(cfg), err)
		}
	}
	h.comp, err = wire.New(ctx, sc, d)
	if err != nil {
		return nil, err
	}
	for _, st := range stages {
		h.handlers[st] = delivery.Chain(h.comp.Service.Handler(st), delivery.Stack(st, cfg.HandlerTimeout, d.Metrics)...)
	}
	return h, nil
}

func stripeKeySource(cfg config.Lambda) string {
	if cfg.StripeSecretARN != "" {
		return "secret " + cfg.StripeSecretARN
	}
	return stripe.EnvSecretKey
}

// Service returns the assembled service (for tests and tools).
func (h *Handler) Service() *pipeline.Service { return h.comp.Service }

// Close flushes the batchers. Handle leaves nothing pending, so this only
// matters for a process that stops outside an invocation.
func (h *Handler) Close() { h.comp.Close() }

// Outcomes of a record, for the invocation's summary log line.
const (
	outcomeUnroutable = "unroutable"
)

// Handle handles one SQS event: every record, concurrently, and returns
// the records to retry as BatchItemFailures. It never returns an error: a
// function error would make the mapping retry the whole batch, including
// records that succeeded or were dead-lettered.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	start := time.Now()
	log := h.log
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With(zap.String("aws_request_id", lc.AwsRequestID))
	}
	// Handlers stop DeadlineMargin before the invocation does, so their
	// records can still be dead-lettered or backed off and the answer sent.
	work := ctx
	if dl, ok := ctx.Deadline(); ok {
		var stop context.CancelFunc
		work, stop = context.WithDeadlineCause(ctx, dl.Add(-h.cfg.DeadlineMargin), errInvocationDeadline)
		defer stop()
	}
	outcomes := make([]string, len(ev.Records))
	failed := make([]bool, len(ev.Records))
	slots := make(chan struct{}, h.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range ev.Records {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			failed[i], outcomes[i] = h.record(ctx, work, log, &ev.Records[i])
		}()
	}
	wg.Wait()

	// An empty list, not null: both mean "all succeeded", this one reads so.
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	counts := map[string]int{}
	for i, r := range ev.Records {
		counts[outcomes[i]]++
		if failed[i] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	fields := []zap.Field{zap.Int("records", len(ev.Records)), zap.Int("failures", len(resp.BatchItemFailures)), zap.Duration("duration", time.Since(start))}
	for _, o := range []pipeline.Outcome{pipeline.OutcomeOK, pipeline.OutcomeRejected, pipeline.OutcomeDuplicate, pipeline.OutcomeConflict} {
		if n := counts[string(o)]; n > 0 {
			fields = append(fields, zap.Int(string(o), n))
		}
	}
	for _, o := range []string{delivery.OutcomeDeadLettered, delivery.OutcomeRetried, delivery.OutcomeDeferred, outcomeUnroutable} {
		if n := counts[o]; n > 0 {
			fields = append(fields, zap.Int(o, n))
		}
	}
	log.Info("batch handled", fields...)
	return resp, nil
}

var errInvocationDeadline = errors.New("the invocation's deadline is near")

// record handles one record by the one delivery policy and reports
// whether it must be retried and how it ended. inv is the invocation's
// context (for acknowledgements), work the handlers' (it ends
// DeadlineMargin earlier).
func (h *Handler) record(inv, work context.Context, log *zap.Logger, m *events.SQSMessage) (retry bool, outcome string) {
	rc, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	log = log.With(zap.String("message_id", m.MessageId), zap.Int("receive_count", rc))
	stage, err := h.stageOf(m.EventSourceARN)
	if err != nil {
		log.Error("record from a queue this function does not serve; it will be retried and end in that queue's DLQ",
			zap.String("event_source_arn", m.EventSourceARN), zap.Error(err))
		return true, outcomeUnroutable
	}
	log = log.With(zap.String("stage", string(stage)))
	msg := delivery.NewMessage(m.MessageId, m.Body, rc)
	out, err := h.handlers[stage](work, msg)
	res := h.settlers[stage].Settle(inv, log, msg, m.ReceiptHandle, delivery.Classify(out, err))
	return res.Retry, res.Outcome
}

// stageOf picks the stage of a record from its queue's name (the last
// part of the eventSourceARN), or the configured stage for a queue this
// function does not know by name.
func (h *Handler) stageOf(arn string) (pipeline.Stage, error) {
	name := arn[strings.LastIndexByte(arn, ':')+1:]
	if st, ok := h.byQueue[name]; ok {
		return st, nil
	}
	if h.cfg.Stage != "" {
		if strings.HasPrefix(name, h.cfg.Prefix+"-") {
			// Probably another stage's queue of this deployment: the mapping
			// is attached to the wrong function.
			return "", fmt.Errorf("queue %s is not the queue of CLOUDCOMMERCE_STAGE=%s", name, h.cfg.Stage)
		}
		return h.cfg.Stage, nil
	}
	return "", fmt.Errorf("queue %q is none of the stage queues of prefix %s; set CLOUDCOMMERCE_STAGE or fix CLOUDCOMMERCE_PREFIX", name, h.cfg.Prefix)
}
