// Package lambda runs the pipeline's stage handlers in AWS Lambda, behind
// SQS event source mappings, as the second compute target next to the ECS
// worker. It runs exactly the handlers the worker runs
// (pipeline.Service.Handler) and classifies their outcomes the same way:
//
//   - nil error: the record succeeded; the event source mapping deletes it;
//   - pipeline.PermanentError: the body is copied to the stage's DLQ with
//     the worker's dead-letter attributes (queue.Attr*), and the record
//     counts as succeeded so the mapping deletes it — never retried;
//   - any other error, or a panic: the record is reported in
//     BatchItemFailures (the mapping must have ReportBatchItemFailures on),
//     so only it comes back, after an exponential back-off set with
//     ChangeMessageVisibility; after the queue's maxReceiveCount SQS moves it
//     to the DLQ itself.
//
// The records of a batch are handled concurrently, at most
// Config.Concurrency at once, each under a deadline, all cancelled
// Config.DeadlineMargin before the invocation's own deadline. The
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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/wire"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/queue"
	"github.com/cloudcommerce/cloudcommerce/internal/stripe"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Deps are what the function is given rather than builds.
type Deps struct {
	AWS aws.Config
	Log *zap.Logger
	// Metrics, when set, observes transitions and batch sizes (the function
	// serves no /metrics; tests read it).
	Metrics *metrics.Metrics
	// Payments and Carrier override the configured adapters (tests).
	Payments pipeline.PaymentGateway
	Carrier  pipeline.Carrier
}

// Handler serves SQS events of the stage queues. Build it once per
// execution environment (at cold start) with New; Handle is safe for
// concurrent use, though Lambda sends one event at a time.
type Handler struct {
	cfg  Config
	log  *zap.Logger
	sqs  *sqs.Client
	comp *wire.Components

	handlers  map[pipeline.Stage]pipeline.Handler
	byQueue   map[string]pipeline.Stage // queue name → stage
	queueURLs map[pipeline.Stage]string
	dlqURLs   map[pipeline.Stage]string
}

// New builds the handler: it resolves the queue and DLQ URLs of the
// stages it serves (failing loudly if they do not exist), reads the Stripe
// key from Secrets Manager when configured, and wires the service. cfg is
// filled with its defaults and validated.
func New(ctx context.Context, cfg Config, d Deps) (*Handler, error) {
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
		byQueue: map[string]pipeline.Stage{}, queueURLs: map[pipeline.Stage]string{}, dlqURLs: map[pipeline.Stage]string{}}
	stages := pipeline.Stages
	if cfg.Stage != "" {
		stages = []pipeline.Stage{cfg.Stage}
	}
	for _, st := range stages {
		h.byQueue[names.Queues[st]] = st
		for _, q := range []struct {
			name string
			into map[pipeline.Stage]string
		}{{names.Queues[st], h.queueURLs}, {names.DLQs[st], h.dlqURLs}} {
			out, err := h.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.name)})
			if err != nil {
				return nil, fmt.Errorf("queue %s: %w (check CLOUDCOMMERCE_PREFIX and the function's sqs:GetQueueUrl permission)", q.name, err)
			}
			q.into[st] = aws.ToString(out.QueueUrl)
		}
	}
	sc := wire.Config{Names: names, TopicARN: cfg.TopicARN, Batching: cfg.BatchingOn(), Linger: cfg.BatchLinger,
		PublishBatch: cfg.PublishBatch, PaymentGateway: cfg.PaymentGateway}
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
	h.comp, err = wire.New(ctx, sc, wire.Deps{AWS: d.AWS, Log: d.Log, Metrics: d.Metrics, Payments: d.Payments, Carrier: d.Carrier})
	if err != nil {
		return nil, err
	}
	for _, st := range stages {
		h.handlers[st] = h.comp.Service.Handler(st)
	}
	return h, nil
}

func stripeKeySource(cfg Config) string {
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
	outcomeDeadLettered = "dead_lettered"
	outcomeRetried      = "retried"
	outcomeUnroutable   = "unroutable"
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
	for _, o := range []string{outcomeDeadLettered, outcomeRetried, outcomeUnroutable} {
		if n := counts[o]; n > 0 {
			fields = append(fields, zap.Int(o, n))
		}
	}
	log.Info("batch handled", fields...)
	return resp, nil
}

var errInvocationDeadline = errors.New("the invocation's deadline is near")

// record handles one record and reports whether it must be retried and how
// it ended. inv is the invocation's context (for acknowledgements), work
// the handlers' (it ends DeadlineMargin earlier).
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
	ctx, cancel := context.WithTimeoutCause(work, h.cfg.HandlerTimeout, queue.ErrHandlerDeadline)
	out, err := h.call(ctx, log, stage, pipeline.Message{ID: m.MessageId, Body: []byte(m.Body), ReceiveCount: rc})
	if err == nil && ctx.Err() != nil {
		// As in the worker: a handler that returned nil after its deadline
		// may have swallowed the cancellation; retrying is idempotent.
		err = context.Cause(ctx)
	}
	cancel()
	if err == nil {
		if out != pipeline.OutcomeOK {
			log.Info("message handled", zap.String("outcome", string(out)))
		}
		return false, string(out)
	}
	if reason, ok := pipeline.IsPermanent(err); ok {
		if dlErr := h.deadLetter(inv, stage, m, rc, reason, err); dlErr != nil {
			log.Error("could not dead-letter a poison message; it will be retried", zap.String("reason", reason), zap.Error(err), zap.NamedError("dlq_error", dlErr))
			h.backOff(inv, log, stage, m, rc)
			return true, outcomeRetried
		}
		log.Warn("message dead-lettered", zap.String("reason", reason), zap.Error(err))
		return false, outcomeDeadLettered
	}
	log.Warn("handler failed; will retry", zap.Error(err))
	h.backOff(inv, log, stage, m, rc)
	return true, outcomeRetried
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

// call runs the handler, turning a panic into an error so the record is
// retried and the execution environment lives on.
func (h *Handler) call(ctx context.Context, log *zap.Logger, st pipeline.Stage, m pipeline.Message) (out pipeline.Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panicked; the message will be retried", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h.handlers[st](ctx, m)
}

func ackContext(inv context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(inv, 5*time.Second)
}

// deadLetter copies the record to the stage DLQ with why, exactly as the
// worker does; the mapping then deletes the original because the record
// is not reported as failed.
func (h *Handler) deadLetter(inv context.Context, st pipeline.Stage, m *events.SQSMessage, rc int, reason string, cause error) error {
	dlq := h.dlqURLs[st]
	if dlq == "" {
		return errors.New("no DLQ known for stage " + string(st))
	}
	text := cause.Error()
	if len(text) > 1000 {
		text = text[:1000]
	}
	attrs := map[string]types.MessageAttributeValue{
		queue.AttrReason:      {DataType: aws.String("String"), StringValue: aws.String(reason)},
		queue.AttrError:       {DataType: aws.String("String"), StringValue: aws.String(text)},
		queue.AttrSourceQueue: {DataType: aws.String("String"), StringValue: aws.String(h.queueURLs[st])},
		queue.AttrReceives:    {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(rc))},
	}
	body := m.Body
	if body == "" {
		body = "(empty body)"
	}
	ctx, cancel := ackContext(inv)
	defer cancel()
	if _, err := h.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(body), MessageAttributes: attrs}); err != nil {
		return fmt.Errorf("send to DLQ: %w", err)
	}
	return nil
}

// backOff delays the record's next delivery exponentially in its receive
// count, as the worker does. Without it the record would return after the
// queue's whole visibility timeout, whatever the attempt.
func (h *Handler) backOff(inv context.Context, log *zap.Logger, st pipeline.Stage, m *events.SQSMessage, rc int) {
	url := h.queueURLs[st]
	if url == "" || m.ReceiptHandle == "" {
		return
	}
	delay := queue.Backoff(h.cfg.RetryBase, h.cfg.RetryMax, rc)
	secs := int32(max((delay+time.Second-1)/time.Second, 1))
	ctx, cancel := ackContext(inv)
	defer cancel()
	if _, err := h.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(url), ReceiptHandle: aws.String(m.ReceiptHandle), VisibilityTimeout: secs,
	}); err != nil {
		log.Warn("could not set retry back-off; the message returns after its visibility timeout", zap.Error(err))
	}
}
