package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/intake"
	"github.com/cloudcommerce/cloudcommerce/internal/metrics"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
	"github.com/cloudcommerce/cloudcommerce/internal/worker"
)

// SeedStock is the demo inventory devstack creates when a SKU is missing.
var SeedStock = map[string]int64{
	"SKU-WIDGET":    100000,
	"SKU-GADGET":    100000,
	"SKU-GIZMO":     100000,
	"SKU-DOOHICKEY": 25, // scarce: some demo orders are rejected
}

// Options configure a stack.
type Options struct {
	Prefix string
	// Worker is the worker configuration (defaults apply to zero fields).
	Worker config.Worker
	Log    *zap.Logger
	// Tracing, when set, traces orders (see worker.Deps.Tracing).
	Tracing oteltrace.TracerProvider
}

// Stack is a provisioned emulator, optionally with a worker on it.
type Stack struct {
	Emulator    *emulator.Emulator
	Provisioned *topology.Provisioned
	Metrics     *metrics.Metrics
	AWS         aws.Config
	Worker      *worker.Worker
	Inbox       *Inbox
	log         *zap.Logger
	// Uncounted is an AWS configuration whose calls are not counted, for
	// reading progress without disturbing the per-order figures.
	Uncounted aws.Config
}

// Provision starts the emulator (Prepare must have run), provisions the
// topology under prefix, subscribes an inbox queue to the topic and seeds
// the demo inventory.
func Provision(ctx context.Context, o Options) (*Stack, error) {
	em, err := emulator.Start()
	if err != nil {
		return nil, err
	}
	s := &Stack{Emulator: em, Metrics: metrics.New(), log: o.Log}
	s.AWS, err = awsconf.Load(ctx, awsconf.Options{Endpoint: em.DirectURL, Region: "us-east-1", StaticCredentials: true, Requests: s.Metrics.AWSRequests, Contention: s.Metrics.AWSContention, Connections: s.Metrics.AWSConnections, Logger: o.Log})
	if err != nil {
		return nil, err
	}
	s.Uncounted, err = awsconf.Load(ctx, awsconf.Options{Endpoint: em.DirectURL, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		return nil, err
	}
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	c := s.Uncounted
	s.Provisioned, err = topo.Provision(ctx, topology.Clients{SQS: sqs.NewFromConfig(c), DynamoDB: awsconf.DynamoDB(c),
		EventBridge: eventbridge.NewFromConfig(c), SNS: sns.NewFromConfig(c)}, o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	inboxURL, err := s.subscribeInbox(ctx, o.Prefix)
	if err != nil {
		return nil, err
	}
	s.Inbox = NewInbox(sqs.NewFromConfig(c), inboxURL, o.Log)
	return s, nil
}

func (s *Stack) subscribeInbox(ctx context.Context, prefix string) (string, error) {
	q := sqs.NewFromConfig(s.Uncounted)
	name := prefix + "-devstack-inbox"
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		return "", fmt.Errorf("create inbox queue: %w", err)
	}
	arn := "arn:aws:sqs:us-east-1:000000000000:" + name
	if _, err := sns.NewFromConfig(s.Uncounted).Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: aws.String(s.Provisioned.TopicARN), Protocol: aws.String("sqs"), Endpoint: aws.String(arn),
	}); err != nil {
		return "", fmt.Errorf("subscribe inbox to topic: %w", err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// SeedInventory creates each missing SKU of stock.
func (s *Stack) SeedInventory(ctx context.Context, st pipeline.Store, stock map[string]int64) error {
	skus := make([]string, 0, len(stock))
	for k := range stock {
		skus = append(skus, k)
	}
	sort.Strings(skus)
	for _, sku := range skus {
		_, err := st.Stock(ctx, sku)
		if errors.Is(err, pipeline.ErrNotFound) {
			err = st.SetStock(ctx, sku, stock[sku])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// StartWorker builds the in-process worker on the emulator.
func (s *Stack) StartWorker(ctx context.Context, o Options) error {
	ledger, err := awsconf.Load(ctx, awsconf.Options{Endpoint: s.Emulator.DirectURL, Region: "us-east-1", StaticCredentials: true, Requests: s.Metrics.AWSRequests, Connections: s.Metrics.AWSConnections, Logger: o.Log, ServiceLabel: "sandbox-ledger"})
	if err != nil {
		return err
	}
	cfg := o.Worker
	cfg.Prefix = o.Prefix
	s.Worker, err = worker.New(ctx, cfg, worker.Deps{AWS: s.AWS, LedgerAWS: &ledger, Log: o.Log, Metrics: s.Metrics, Notifications: s.Inbox,
		Tracing: o.Tracing})
	return err
}

// Handler serves the intake API, the ops endpoints and the operations
// console (/console, with the notifications each order was sent) on one
// address.
func (s *Stack) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Worker.Intake.Routes(mux)
	s.Worker.OpsRoutes(mux)
	return intake.Fallback(mux)
}

// Run runs the worker and the inbox until ctx is done, then drains.
func (s *Stack) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Inbox.Run(ctx) }()
	err := s.Worker.Run(ctx)
	wg.Wait()
	return err
}

// Close stops the emulator, after giving a persistent one time to write
// its last changes.
func (s *Stack) Close() {
	time.Sleep(2 * emulator.FlushInterval)
	s.Emulator.Close()
}
