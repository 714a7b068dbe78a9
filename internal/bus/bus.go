// Package bus is the EventBridge adapter of pipeline.Publisher. Events from
// concurrent handlers are coalesced into PutEvents calls of up to 10 entries
// (and under the 256 KiB request limit); every entry's result is checked and
// reaches the caller that published it, so a failed entry fails exactly the
// handler whose message must be retried.
package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/cloudcommerce/cloudcommerce/internal/batch"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// maxRequestBytes is PutEvents' limit on the total size of a request's
// entries.
const maxRequestBytes = 256 * 1024

// Config configures the publisher.
type Config struct {
	Bus string
	// Batch is the most entries per PutEvents (1..10); default 10.
	Batch int
	// Linger is how long an event waits for company; default 5ms.
	Linger time.Duration
	// OnFlush, if set, hears each request's entry count.
	OnFlush func(int)
}

// Publisher implements pipeline.Publisher. Safe for concurrent use.
type Publisher struct {
	eb  *eventbridge.Client
	cfg Config
	b   *batch.Batcher[types.PutEventsRequestEntry]
}

var _ pipeline.Publisher = (*Publisher)(nil)

// New returns a publisher to the bus.
func New(eb *eventbridge.Client, cfg Config) *Publisher {
	if cfg.Batch <= 0 || cfg.Batch > 10 {
		cfg.Batch = 10
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	p := &Publisher{eb: eb, cfg: cfg}
	p.b = batch.New(batch.Config{Max: cfg.Batch, Linger: cfg.Linger, OnFlush: cfg.OnFlush}, p.flush)
	return p
}

// Entry builds the PutEvents entry of an event.
func Entry(busName string, ev pipeline.Event) (types.PutEventsRequestEntry, error) {
	detail, err := pipeline.EncodeDetail(ev)
	if err != nil {
		return types.PutEventsRequestEntry{}, err
	}
	return types.PutEventsRequestEntry{
		EventBusName: aws.String(busName),
		Source:       aws.String(pipeline.EventSource),
		DetailType:   aws.String(string(ev.Type)),
		Detail:       aws.String(detail),
	}, nil
}

// Publish implements pipeline.Publisher.
func (p *Publisher) Publish(ctx context.Context, events ...pipeline.Event) error {
	chans := make([]<-chan error, 0, len(events))
	for _, ev := range events {
		e, err := Entry(p.cfg.Bus, ev)
		if err != nil {
			return err
		}
		chans = append(chans, p.b.Submit(e))
	}
	var first error
	for i, ch := range chans {
		select {
		case err := <-ch:
			if err != nil && first == nil {
				first = fmt.Errorf("put %s event for order %s: %w", events[i].Type, events[i].Order.ID, err)
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return first
}

// Close sends what is pending and waits for requests in flight.
func (p *Publisher) Close() { p.b.Close() }

func entrySize(e types.PutEventsRequestEntry) int {
	return len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail)) + 14
}

func (p *Publisher) flush(ctx context.Context, entries []types.PutEventsRequestEntry) []error {
	errs := make([]error, len(entries))
	for start := 0; start < len(entries); {
		end, size := start, 0
		for end < len(entries) && (end == start || size+entrySize(entries[end]) <= maxRequestBytes) {
			size += entrySize(entries[end])
			end++
		}
		p.put(ctx, entries[start:end], errs[start:end])
		start = end
	}
	return errs
}

func (p *Publisher) put(ctx context.Context, entries []types.PutEventsRequestEntry, errs []error) {
	out, err := p.eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	if out.FailedEntryCount == 0 {
		return
	}
	for i, r := range out.Entries {
		if i < len(errs) && r.ErrorCode != nil {
			errs[i] = fmt.Errorf("entry rejected: %s: %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
		}
	}
	if len(out.Entries) != len(entries) {
		// The response does not say which entries failed: fail them all;
		// the handlers retry and consumers are idempotent.
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("%d of %d entries failed", out.FailedEntryCount, len(entries))
			}
		}
	}
}
