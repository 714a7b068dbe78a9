package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// Names are the queue names of one stage: its queue and its DLQ.
type Names struct {
	Queue, DLQ string
}

// Command carries out `worker dlq list` and `worker dlq redrive` for one
// stage: it resolves the stage's queue URLs by name and prints what it did
// to Out.
type Command struct {
	SQS   *sqs.Client
	Stage pipeline.Stage
	Names Names
	Out   io.Writer
}

func (c Command) manager(ctx context.Context, peek int) (*Manager, error) {
	var q Queue
	var err error
	if q.URL, err = topology.QueueURL(ctx, c.SQS, c.Names.Queue); err != nil {
		return nil, err
	}
	if q.DLQURL, err = topology.QueueURL(ctx, c.SQS, c.Names.DLQ); err != nil {
		return nil, err
	}
	return &Manager{SQS: c.SQS, Queues: map[pipeline.Stage]Queue{c.Stage: q}, PeekLimit: peek}, nil
}

// List prints up to max (default 100) of the stage's dead letters without
// consuming them, as a table or, with asJSON, as a JSON array.
func (c Command) List(ctx context.Context, max int, asJSON bool) error {
	if max == 0 {
		max = 100
	}
	m, err := c.manager(ctx, max)
	if err != nil {
		return err
	}
	list, err := m.List(ctx, c.Stage)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(c.Out)
		enc.SetIndent("", "  ")
		if list == nil {
			list = []DeadLetter{}
		}
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintf(c.Out, "%s is empty\n", c.Names.DLQ)
		return nil
	}
	tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tORDER ID\tEVENT\tRECEIVES\tREASON\tSENT")
	for _, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.MessageID, orDash(d.OrderID), orDash(d.Event), d.ReceiveCount, d.Reason, d.SentAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// Redrive moves up to max (0: all) of the stage's dead letters back to its
// queue and prints how many moved, also when it stopped on an error.
func (c Command) Redrive(ctx context.Context, max int) error {
	m, err := c.manager(ctx, 0)
	if err != nil {
		return err
	}
	n, err := m.Redrive(ctx, c.Stage, max)
	fmt.Fprintf(c.Out, "moved %d messages from %s back to %s\n", n, c.Names.DLQ, c.Names.Queue)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
