package dlq

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

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
	// Err receives the redrive's progress when Out has its JSON report.
	Err io.Writer
	// Log, if set, hears retries.
	Log *zap.Logger
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
// queue. While it runs it prints a line per page (to Out, or with asJSON to
// Err, so that Out holds only the JSON report); at the end it prints a
// summary, also when it stopped on an error: how many moved, and every
// message it left in the DLQ with AWS's reason. It returns an error (so the
// process exits non-zero) when any message was not moved.
func (c Command) Redrive(ctx context.Context, max int, asJSON bool) error {
	m, err := c.manager(ctx, 0)
	if err != nil {
		return err
	}
	m.Log = c.Log
	progressTo := c.Out
	if asJSON {
		progressTo = cmp.Or[io.Writer](c.Err, io.Discard)
	}
	rep, err := m.RedriveReport(ctx, c.Stage, max, func(p Page) {
		if p.Of > 0 {
			fmt.Fprintf(progressTo, "page %d: moved %d, not moved %d (%d of %d moved so far)\n", p.Number, p.Moved, p.Unsent, p.TotalMoved, p.Of)
		} else {
			fmt.Fprintf(progressTo, "page %d: %d moved so far\n", p.Number, p.TotalMoved)
		}
	})
	if asJSON {
		if jerr := writeJSON(c.Out, rep); jerr != nil && err == nil {
			err = jerr
		}
		return err
	}
	fmt.Fprintf(c.Out, "moved %d messages from %s back to %s (%s, %d pages)\n", rep.Moved, c.Names.DLQ, c.Names.Queue, rep.Method, rep.Pages)
	if len(rep.Unsent) > 0 {
		fmt.Fprintf(c.Out, "not moved, still in %s: %d\n", c.Names.DLQ, len(rep.Unsent))
		tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  MESSAGE ID\tCODE\tRETRYABLE\tREASON")
		for _, u := range rep.Unsent {
			fmt.Fprintf(tw, "  %s\t%s\t%t\t%s\n", u.MessageID, orDash(u.Code), u.Retryable, u.Reason)
		}
		_ = tw.Flush()
	}
	if left := rep.Held - rep.Moved - len(rep.Unsent); rep.Method == MethodLoop && rep.InFlight > 0 && left > 0 {
		fmt.Fprintf(c.Out, "%d of the messages in %s were in flight when the redrive began (a killed redrive's page, or a peek); they become visible within %ds: run the redrive again then\n",
			rep.InFlight, c.Names.DLQ, redriveVisibility)
	}
	if len(rep.NotDeleted) > 0 {
		fmt.Fprintf(c.Out, "in both queues (sent, but not deleted from %s; the handlers are idempotent): %s\n", c.Names.DLQ, strings.Join(rep.NotDeleted, " "))
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
