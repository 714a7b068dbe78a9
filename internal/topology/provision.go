package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// Clients are the AWS clients the provisioner uses, and how it reports
// and bounds the work it waits for.
type Clients struct {
	SQS         *sqs.Client
	DynamoDB    *dynamodb.Client
	EventBridge *eventbridge.Client
	SNS         *sns.Client
	// Progress, when set, gets a line for each index added to an existing
	// table and for each look at it while DynamoDB builds the index.
	Progress io.Writer
	// IndexPoll is how often a table is described while an index is
	// being built (default 10 s); IndexWait bounds the wait for one index
	// (default 30 minutes), within the context's deadline.
	IndexPoll, IndexWait time.Duration
}

// Provisioned describes what Provision created or found.
type Provisioned struct {
	Names     Names
	QueueURLs map[string]string // by queue name
	QueueARNs map[string]string // by queue name
	TopicARN  string
	// Created lists resources that did not exist before this run.
	Created []string
}

// Provision creates every resource of the topology under prefix on the
// clients' endpoint. Resources that exist are left as they are, so running
// it twice is a no-op.
func (t *Topology) Provision(ctx context.Context, c Clients, prefix string) (*Provisioned, error) {
	p := &Provisioned{Names: t.Names(prefix), QueueURLs: map[string]string{}, QueueARNs: map[string]string{}}
	for _, tb := range t.Tables {
		if err := p.table(ctx, c, prefix, tb); err != nil {
			return nil, err
		}
	}
	for _, q := range t.Queues {
		dlq := prefix + "-" + q.DLQ.Name
		if err := p.queue(ctx, c.SQS, dlq, map[string]string{
			"MessageRetentionPeriod": strconv.Itoa(q.DLQ.MessageRetentionSeconds),
			"SqsManagedSseEnabled":   "true",
		}); err != nil {
			return nil, err
		}
		redrive, _ := json.Marshal(map[string]any{"deadLetterTargetArn": p.QueueARNs[dlq], "maxReceiveCount": q.DLQ.MaxReceiveCount})
		if err := p.queue(ctx, c.SQS, prefix+"-"+q.Name, map[string]string{
			"VisibilityTimeout":             strconv.Itoa(q.VisibilityTimeoutSeconds),
			"ReceiveMessageWaitTimeSeconds": strconv.Itoa(q.ReceiveWaitTimeSeconds),
			"MessageRetentionPeriod":        strconv.Itoa(q.MessageRetentionSeconds),
			"MaximumMessageSize":            strconv.Itoa(q.MaxMessageSizeBytes),
			"RedrivePolicy":                 string(redrive),
			"SqsManagedSseEnabled":          "true",
		}); err != nil {
			return nil, err
		}
	}
	for _, r := range t.Rules {
		if err := p.queue(ctx, c.SQS, prefix+"-"+r.TargetDLQ, map[string]string{"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}); err != nil {
			return nil, err
		}
	}
	if err := p.bus(ctx, c.EventBridge, prefix); err != nil {
		return nil, err
	}
	for _, r := range t.Rules {
		if err := p.rule(ctx, c, prefix, r); err != nil {
			return nil, err
		}
	}
	out, err := c.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(p.Names.Topic)})
	if err != nil {
		return nil, fmt.Errorf("create topic %s: %w", p.Names.Topic, err)
	}
	p.TopicARN = aws.ToString(out.TopicArn)
	return p, nil
}

func (p *Provisioned) table(ctx context.Context, c Clients, prefix string, tb Table) error {
	db := c.DynamoDB
	name := prefix + "-" + tb.Name
	if out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name}); err == nil {
		return p.addIndexes(ctx, c, name, tb, out.Table)
	} else if var404 := new(ddbtypes.ResourceNotFoundException); !errors.As(err, &var404) {
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	attrs := map[string]string{tb.HashKey.Name: tb.HashKey.Type}
	schema := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(tb.HashKey.Name), KeyType: ddbtypes.KeyTypeHash}}
	if tb.RangeKey != nil {
		attrs[tb.RangeKey.Name] = tb.RangeKey.Type
		schema = append(schema, ddbtypes.KeySchemaElement{AttributeName: aws.String(tb.RangeKey.Name), KeyType: ddbtypes.KeyTypeRange})
	}
	var gsis []ddbtypes.GlobalSecondaryIndex
	for _, ix := range tb.GlobalSecondaryIndexes {
		attrs[ix.HashKey.Name] = ix.HashKey.Type
		ks := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(ix.HashKey.Name), KeyType: ddbtypes.KeyTypeHash}}
		if ix.RangeKey != nil {
			attrs[ix.RangeKey.Name] = ix.RangeKey.Type
			ks = append(ks, ddbtypes.KeySchemaElement{AttributeName: aws.String(ix.RangeKey.Name), KeyType: ddbtypes.KeyTypeRange})
		}
		gsis = append(gsis, ddbtypes.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  ks,
			Projection: projection(ix),
		})
	}
	var defs []ddbtypes.AttributeDefinition
	for n, ty := range attrs {
		defs = append(defs, ddbtypes.AttributeDefinition{AttributeName: aws.String(n), AttributeType: ddbtypes.ScalarAttributeType(ty)})
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:              &name,
		AttributeDefinitions:   defs,
		KeySchema:              schema,
		GlobalSecondaryIndexes: gsis,
		BillingMode:            ddbtypes.BillingModePayPerRequest,
		SSESpecification:       &ddbtypes.SSESpecification{Enabled: aws.Bool(true)},
	})
	var inUse *ddbtypes.ResourceInUseException
	if errors.As(err, &inUse) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	p.Created = append(p.Created, "table "+name)
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: &name}, 2*60e9); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	if tb.TTLAttribute != "" {
		if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               &name,
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(tb.TTLAttribute), Enabled: aws.Bool(true)},
		}); err != nil {
			return fmt.Errorf("enable TTL on %s: %w", name, err)
		}
	}
	return nil
}

func (p *Provisioned) queue(ctx context.Context, q *sqs.Client, name string, attrs map[string]string) error {
	if u, err := QueueURL(ctx, q, name); err == nil {
		p.QueueURLs[name] = u
	} else {
		if !QueueMissing(err) {
			return fmt.Errorf("look up %w", err)
		}
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
		if err != nil {
			return fmt.Errorf("create queue %s: %w", name, err)
		}
		p.QueueURLs[name] = aws.ToString(out.QueueUrl)
		p.Created = append(p.Created, "queue "+name)
	}
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(p.QueueURLs[name]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("get ARN of queue %s: %w", name, err)
	}
	p.QueueARNs[name] = out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	return nil
}

// QueueMissing reports whether err says the queue does not exist, in either
// of the codes SQS endpoints use for it.
func QueueMissing(err error) bool {
	var dne *sqstypes.QueueDoesNotExist
	if errors.As(err, &dne) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "QueueDoesNotExist" || api.ErrorCode() == "AWS.SimpleQueueService.NonExistentQueue")
}

func (p *Provisioned) bus(ctx context.Context, eb *eventbridge.Client, name string) error {
	if _, err := eb.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: &name}); err == nil {
		return nil
	}
	_, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: &name})
	var exists *ebtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create event bus %s: %w", name, err)
	}
	if err == nil {
		p.Created = append(p.Created, "bus "+name)
	}
	return nil
}

func (p *Provisioned) rule(ctx context.Context, c Clients, prefix string, r Rule) error {
	name := prefix + "-" + r.Name
	ruleOut, err := c.EventBridge.PutRule(ctx, &eventbridge.PutRuleInput{
		Name:         &name,
		EventBusName: aws.String(p.Names.Bus),
		EventPattern: aws.String(string(r.EventPattern)),
		Description:  aws.String(r.Description),
		State:        ebtypes.RuleStateEnabled,
	})
	if err != nil {
		return fmt.Errorf("put rule %s: %w", name, err)
	}
	target := p.Names.Queues[r.TargetStage]
	dlq := prefix + "-" + r.TargetDLQ
	if _, err := c.EventBridge.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule:         &name,
		EventBusName: aws.String(p.Names.Bus),
		Targets: []ebtypes.Target{{
			Id:               aws.String(string(r.TargetStage)),
			Arn:              aws.String(p.QueueARNs[target]),
			DeadLetterConfig: &ebtypes.DeadLetterConfig{Arn: aws.String(p.QueueARNs[dlq])},
			RetryPolicy: &ebtypes.RetryPolicy{
				MaximumEventAgeInSeconds: aws.Int32(int32(r.RetryPolicy.MaximumEventAgeSeconds)),
				MaximumRetryAttempts:     aws.Int32(int32(r.RetryPolicy.MaximumRetryAttempts)),
			},
		}},
	}); err != nil {
		return fmt.Errorf("put target of rule %s: %w", name, err)
	}
	// Only this rule may send to its queue (and its target DLQ).
	for _, q := range []string{target, dlq} {
		policy, _ := json.Marshal(map[string]any{
			"Version": "2012-10-17",
			"Statement": []map[string]any{{
				"Sid":       "AllowRule" + r.Name,
				"Effect":    "Allow",
				"Principal": map[string]string{"Service": "events.amazonaws.com"},
				"Action":    "sqs:SendMessage",
				"Resource":  p.QueueARNs[q],
				"Condition": map[string]any{"ArnEquals": map[string]string{"aws:SourceArn": aws.ToString(ruleOut.RuleArn)}},
			}},
		})
		if _, err := c.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
			QueueUrl: aws.String(p.QueueURLs[q]), Attributes: map[string]string{"Policy": string(policy)},
		}); err != nil {
			return fmt.Errorf("set policy of queue %s: %w", q, err)
		}
	}
	return nil
}

func projection(ix Index) *ddbtypes.Projection {
	p := &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(ix.ProjectionType())}
	if ix.Projection != nil {
		p.NonKeyAttributes = ix.Projection.NonKeyAttributes
	}
	return p
}

// addIndexes creates the indexes of tb that the existing table lacks (a
// topology that gained an index after the table was made) the way
// DynamoDB allows: one index per UpdateTable, and the next only once the
// table and every index are ACTIVE again, since DynamoDB refuses a second
// index created or deleted while one is still being built
// (LimitExceededException). DynamoDB backfills each index from the items
// that have its keys, which on a large table takes a while: the wait is
// reported on c.Progress and bounded by c.IndexWait and ctx; provisioning
// again after a timeout picks up where it stopped. An endpoint that
// accepts the update but makes no index is reported, naming the index,
// rather than left to fail on the first query.
func (p *Provisioned) addIndexes(ctx context.Context, c Clients, name string, tb Table, have *ddbtypes.TableDescription) error {
	db := c.DynamoDB
	w := &indexWait{c: c, table: name}
	for _, ix := range tb.GlobalSecondaryIndexes {
		if g := findIndex(have, ix.Name); g != nil {
			if g.IndexStatus == ddbtypes.IndexStatusCreating {
				// Left building by an earlier run: wait for it as for one
				// made now.
				var err error
				if have, err = w.until(ctx, ix.Name); err != nil {
					return err
				}
			}
			continue
		}
		defs := []ddbtypes.AttributeDefinition{{AttributeName: aws.String(ix.HashKey.Name), AttributeType: ddbtypes.ScalarAttributeType(ix.HashKey.Type)}}
		ks := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(ix.HashKey.Name), KeyType: ddbtypes.KeyTypeHash}}
		if ix.RangeKey != nil {
			defs = append(defs, ddbtypes.AttributeDefinition{AttributeName: aws.String(ix.RangeKey.Name), AttributeType: ddbtypes.ScalarAttributeType(ix.RangeKey.Type)})
			ks = append(ks, ddbtypes.KeySchemaElement{AttributeName: aws.String(ix.RangeKey.Name), KeyType: ddbtypes.KeyTypeRange})
		}
		in := &dynamodb.UpdateTableInput{TableName: &name, AttributeDefinitions: defs,
			GlobalSecondaryIndexUpdates: []ddbtypes.GlobalSecondaryIndexUpdate{{Create: &ddbtypes.CreateGlobalSecondaryIndexAction{
				IndexName: aws.String(ix.Name), KeySchema: ks, Projection: projection(ix)}}}}
		var refused time.Time
		for {
			if !idle(have) {
				// Another index change (not this run's) is under way.
				var err error
				if have, err = w.until(ctx, ""); err != nil {
					return err
				}
			}
			w.say("table %s: adding index %s", name, ix.Name)
			_, err := db.UpdateTable(ctx, in)
			var limit *ddbtypes.LimitExceededException
			if errors.As(err, &limit) {
				// Another change began since the table was described (or a
				// limit the description does not show): look again after a
				// pause, for at most IndexWait.
				if refused.IsZero() {
					refused = time.Now()
				}
				if time.Since(refused) > w.limit() {
					return fmt.Errorf("add index %s to table %s: refused for %s: %w", ix.Name, name, w.limit(), err)
				}
				w.say("table %s: DynamoDB refused index %s for now (%s); waiting", name, ix.Name, limit.ErrorMessage())
				select {
				case <-ctx.Done():
					return fmt.Errorf("add index %s to table %s: %w (after %v)", ix.Name, name, ctx.Err(), err)
				case <-time.After(w.poll()):
				}
				have = nil
				continue
			}
			if err != nil {
				return fmt.Errorf("add index %s to table %s: %w", ix.Name, name, err)
			}
			break
		}
		var err error
		if have, err = w.until(ctx, ix.Name); err != nil {
			return err
		}
		p.Created = append(p.Created, "index "+name+"/"+ix.Name)
	}
	return nil
}

func findIndex(d *ddbtypes.TableDescription, name string) *ddbtypes.GlobalSecondaryIndexDescription {
	if d == nil {
		return nil
	}
	for i, g := range d.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) == name {
			return &d.GlobalSecondaryIndexes[i]
		}
	}
	return nil
}

// idle reports whether d is a table DynamoDB would let create or delete
// an index: the table ACTIVE and no index being built or removed.
func idle(d *ddbtypes.TableDescription) bool {
	if d == nil || d.TableStatus != ddbtypes.TableStatusActive {
		return false
	}
	for _, g := range d.GlobalSecondaryIndexes {
		if g.IndexStatus == ddbtypes.IndexStatusCreating || g.IndexStatus == ddbtypes.IndexStatusDeleting {
			return false
		}
	}
	return true
}

// indexWait polls a table while DynamoDB changes its indexes.
type indexWait struct {
	c     Clients
	table string
}

func (w *indexWait) say(format string, args ...any) {
	if w.c.Progress != nil {
		fmt.Fprintf(w.c.Progress, format+"\n", args...)
	}
}

func (w *indexWait) poll() time.Duration {
	if w.c.IndexPoll > 0 {
		return w.c.IndexPoll
	}
	return 10 * time.Second
}

func (w *indexWait) limit() time.Duration {
	if w.c.IndexWait > 0 {
		return w.c.IndexWait
	}
	return 30 * time.Minute
}

// until describes the table every IndexPoll until it is idle and, when
// index is named, that index is ACTIVE; it gives up after IndexWait or
// when ctx ends, saying what it last saw.
func (w *indexWait) until(ctx context.Context, index string) (*ddbtypes.TableDescription, error) {
	poll, limit := w.poll(), w.limit()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	what := "its indexes"
	if index != "" {
		what = "index " + index
	}
	last := "not yet described"
	for {
		out, err := w.c.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &w.table})
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("describe table %s while waiting for %s: %w", w.table, what, err)
		}
		if err == nil {
			d := out.Table
			last = fmt.Sprintf("table %s", d.TableStatus)
			for _, g := range d.GlobalSecondaryIndexes {
				if g.IndexStatus != ddbtypes.IndexStatusActive || aws.ToString(g.IndexName) == index {
					last += fmt.Sprintf(", index %s %s", aws.ToString(g.IndexName), g.IndexStatus)
					if aws.ToBool(g.Backfilling) {
						last += " (backfilling)"
					}
				}
			}
			g := findIndex(d, index)
			if idle(d) && (index == "" || (g != nil && g.IndexStatus == ddbtypes.IndexStatusActive)) {
				w.say("table %s: %s ready after %s (%s)", w.table, what, time.Since(start).Round(time.Second), last)
				return d, nil
			}
			if index != "" && g == nil {
				return nil, fmt.Errorf("table %s has no index %s and the endpoint did not create it: delete the table (devstack: its --data-dir) and provision again", w.table, index)
			}
			w.say("table %s: waiting for %s: %s, %s so far", w.table, what, last, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("table %s: %s not ready after %s (%s): DynamoDB goes on building it; provision again later to wait for it and add the rest: %w",
				w.table, what, time.Since(start).Round(time.Second), last, ctx.Err())
		case <-time.After(poll):
		}
	}
}
