// Package dlq lets an operator see and recover dead-lettered messages, for
// the `worker dlq` commands and the console: List peeks at a stage's DLQ
// without consuming it; Redrive moves messages back to the stage queue with
// SQS's StartMessageMoveTask where the endpoint supports it, and otherwise
// with a receive → send → delete loop that deletes a message from the DLQ
// only after the stage queue accepted it, so a failure at any point leaves
// it in the DLQ (or, after a crash between send and delete, in both queues,
// which the idempotent handlers absorb) — never nowhere.
package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/cloudcommerce/cloudcommerce/internal/delivery"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// DeadLetter is one message in a stage's DLQ, as the console shows it. It
// never carries the body: that holds the customer's contact details and
// payment token.
type DeadLetter struct {
	MessageID string `json:"message_id"`
	// OrderID and Event are read from the body when it is an event.
	OrderID string `json:"order_id,omitempty"`
	Event   string `json:"event_type,omitempty"`
	// ReceiveCount is how often the stage received it before it was
	// dead-lettered (the worker's attribute), or SQS's approximate count.
	ReceiveCount int `json:"receive_count"`
	// Reason is the worker's dead-letter reason, or "max_receives" for a
	// message SQS moved after the queue's maxReceiveCount.
	Reason string `json:"reason"`
	// Error is the error the worker gave up on, when it dead-lettered it.
	Error  string    `json:"error,omitempty"`
	SentAt time.Time `json:"sent_at"`
}

// Queue is a stage queue and its DLQ.
type Queue = topology.StageQueue

// Manager lists and redrives the stage DLQs on SQS. Safe for concurrent
// use; ctx bounds each call.
type Manager struct {
	SQS    *sqs.Client
	Queues map[pipeline.Stage]Queue
	Log    *zap.Logger
	// PeekLimit is the most messages List returns; default 50.
	PeekLimit int
	// EntryAttempts is how often a redrive sends an entry SendMessageBatch
	// fails with a retryable error; default EntryAttempts.
	EntryAttempts int
	// Backoff spaces those attempts; default the SDK's exponential
	// back-off with jitter, at most 5s.
	Backoff retry.BackoffDelayer
}

// ReasonMaxReceives is the reason shown for a message SQS itself moved to
// the DLQ after the queue's maxReceiveCount (it carries no worker reason).
const ReasonMaxReceives = "max_receives"

// peekVisibility hides peeked messages only while a page is assembled; they
// are released at once after (SQS cannot receive with visibility 0: the
// SDK does not send a zero).
const peekVisibility = 10

func (d *Manager) queue(stage pipeline.Stage) (Queue, error) {
	q, ok := d.Queues[stage]
	if !ok || q.URL == "" || q.DLQURL == "" {
		return Queue{}, fmt.Errorf("no queues known for stage %q", stage)
	}
	return q, nil
}

// List returns up to PeekLimit dead-lettered messages of a stage without
// consuming them. It receives the DLQ's messages with a short
// visibility timeout until it has PeekLimit or the queue has no more, then
// makes them visible again at once. Their approximate receive count grows
// by one per look; a DLQ has no redrive of its own, so that is harmless.
func (d *Manager) List(ctx context.Context, stage pipeline.Stage) ([]DeadLetter, error) {
	q, err := d.queue(stage)
	if err != nil {
		return nil, err
	}
	limit := d.PeekLimit
	if limit <= 0 {
		limit = 50
	}
	var out []DeadLetter
	var receipts []string
	defer func() { d.release(q.DLQURL, receipts) }()
	for wait := int32(1); len(out) < limit; wait = 0 {
		resp, err := d.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQURL, MaxNumberOfMessages: int32(min(10, limit-len(out))), VisibilityTimeout: peekVisibility, WaitTimeSeconds: wait,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			return out, fmt.Errorf("peek %s DLQ: %w", stage, err)
		}
		if len(resp.Messages) == 0 {
			break
		}
		for _, m := range resp.Messages {
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
			out = append(out, deadLetter(m))
		}
	}
	return out, nil
}

// release makes peeked messages visible again, on its own bounded context
// so that a cancelled page still hands them back.
func (d *Manager) release(url string, receipts []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(receipts) > 0 {
		n := min(10, len(receipts))
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, n)
		for i := range entries {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(receipts[i]), VisibilityTimeout: 0}
		}
		receipts = receipts[n:]
		out, err := d.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d entries failed, first %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
		if err != nil && d.Log != nil {
			d.Log.Warn("could not release peeked dead letters; they reappear after their visibility timeout",
				zap.Int("seconds", peekVisibility), zap.Error(err))
		}
	}
}

func attr(m types.Message, name string) string {
	if v, ok := m.MessageAttributes[name]; ok {
		return aws.ToString(v.StringValue)
	}
	return ""
}

func deadLetter(m types.Message) DeadLetter {
	dl := DeadLetter{MessageID: aws.ToString(m.MessageId), Reason: attr(m, delivery.AttrReason), Error: attr(m, delivery.AttrError)}
	if dl.Reason == "" {
		dl.Reason = ReasonMaxReceives
	}
	if n, err := strconv.Atoi(attr(m, delivery.AttrReceives)); err == nil {
		dl.ReceiveCount = n
	} else {
		dl.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		dl.SentAt = time.UnixMilli(ms).UTC()
	}
	// A dead letter is often not a whole event: take what can be read.
	ev, _ := pipeline.DecodeEvent([]byte(aws.ToString(m.Body)))
	dl.OrderID, dl.Event = ev.Order.ID, string(ev.Type)
	return dl
}

// deadLetterAttrs are the attributes the worker adds when it dead-letters a
// message; a redriven message goes back without them, as it first came.
var deadLetterAttrs = map[string]bool{delivery.AttrReason: true, delivery.AttrError: true, delivery.AttrSourceQueue: true, delivery.AttrReceives: true}

// Redrive moves up to max messages (0: all it held when it began) from a
// stage's DLQ back to the stage queue and returns how many moved; see
// RedriveReport.
func (d *Manager) Redrive(ctx context.Context, stage pipeline.Stage, max int) (int, error) {
	r, err := d.RedriveReport(ctx, stage, max, nil)
	return r.Moved, err
}

// Unsent is a dead letter a redrive did not move: it is still in the DLQ.
type Unsent struct {
	MessageID string `json:"message_id"`
	// Code is AWS's error code for the message's entry or for the whole
	// request ("InternalError", "RequestThrottled"…).
	Code string `json:"code"`
	// Reason is AWS's error message, or the error.
	Reason string `json:"reason"`
	// Retryable says whether AWS called the error retryable (it was
	// retried, and a later redrive may move the message).
	Retryable bool `json:"retryable"`
}

// Page is one page of a redrive, for progress: what it moved and left.
type Page struct {
	Number int `json:"page"`
	Moved  int `json:"moved"`
	Unsent int `json:"unsent"`
	// TotalMoved and TotalUnsent are the counts so far; Of is the most the
	// redrive moves (the messages the DLQ held when it began, or max).
	TotalMoved  int `json:"total_moved"`
	TotalUnsent int `json:"total_unsent"`
	Of          int `json:"of"`
}

// Redrive methods.
const (
	MethodMoveTask = "move_task"
	MethodLoop     = "receive_send_delete"
)

// Report is what a redrive did.
type Report struct {
	Stage pipeline.Stage `json:"stage"`
	// Method is MethodMoveTask (SQS's own message move task) or MethodLoop.
	Method string `json:"method"`
	// Held is how many messages the DLQ held when the redrive began, and
	// InFlight how many of those were hidden (a page of a redrive that was
	// killed, or a peek): they are moved by a redrive run once they are
	// visible again, after their visibility timeout.
	Held     int `json:"held"`
	InFlight int `json:"in_flight"`
	Moved    int `json:"moved"`
	Pages    int `json:"pages"`
	// Unsent are the messages the stage queue did not accept; they are
	// still in the DLQ.
	Unsent []Unsent `json:"unsent"`
	// NotDeleted are DLQ message ids the stage queue accepted but that
	// could not be deleted from the DLQ: they are in both queues, and a
	// later redrive sends them again (the handlers are idempotent).
	NotDeleted []string `json:"not_deleted"`
	// Error is why the redrive failed or stopped early; empty on success.
	Error string `json:"error,omitempty"`
}

// UnsentError is the error of a redrive that left messages in the DLQ
// because the stage queue did not accept them.
type UnsentError struct {
	Stage  pipeline.Stage
	Unsent []Unsent
}

func (e *UnsentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d message%s not moved, still in the %s DLQ:", len(e.Unsent), plural(len(e.Unsent)), e.Stage)
	for i, u := range e.Unsent {
		if i == 10 {
			fmt.Fprintf(&b, " … and %d more", len(e.Unsent)-i)
			break
		}
		fmt.Fprintf(&b, " %s (%s: %s)", u.MessageID, u.Code, u.Reason)
		if i < len(e.Unsent)-1 && i < 9 {
			b.WriteString(";")
		}
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// redriveVisibility hides a page of dead letters while it is sent and
// deleted (and while an entry is retried). A redrive killed halfway leaves
// its page in flight invisible in the DLQ (or, if it was sent, in both
// queues) for this long.
const redriveVisibility = 30

// RedriveReport moves up to max messages (0: all it held when it began)
// from a stage's DLQ back to the stage queue and reports what it did,
// calling progress (if not nil) after each page. With max 0 it first tries
// SQS's own StartMessageMoveTask; where the endpoint lacks it, and for a
// bounded max, it runs a receive → send → delete loop, ten messages a
// page, until the DLQ answers empty or max have moved.
//
// Only messages the stage queue accepted are deleted from the DLQ. An entry
// SendMessageBatch fails with an error AWS calls retryable (a server-side
// fault, a throttle) is sent again after a back-off, up to EntryAttempts
// times; whole requests are retried by the SDK's retryer. A message still
// not accepted stays in the DLQ (hidden until the redrive ends, so that the
// rest of the DLQ moves on) and is reported in Unsent; the error is then an
// *UnsentError. A request that fails as a whole ends the redrive: its page
// stays in the DLQ.
//
// A message that fails again while the redrive runs comes back to the DLQ
// (a poison message does so at once). So that the loop does not move it
// round and round, a redrive moves at most the messages the DLQ held when
// it began, and stops at a message sent to the DLQ after it began or one
// it has moved itself.
//
// A redrive that is killed leaves every message in the stage queue or the
// DLQ: each page is sent before it is deleted, so at most the page in
// flight is in both (the stage handlers are idempotent), and running the
// redrive again moves the rest.
func (d *Manager) RedriveReport(ctx context.Context, stage pipeline.Stage, max int, progress func(Page)) (Report, error) {
	rep := Report{Stage: stage, Method: MethodLoop, Unsent: []Unsent{}, NotDeleted: []string{}}
	q, err := d.queue(stage)
	if err != nil {
		return rep, err
	}
	if max <= 0 {
		rep.Method = MethodMoveTask
		if err := d.moveTask(ctx, q, &rep, progress); err == nil || !unsupported(err) {
			if err != nil {
				rep.Error = err.Error()
			}
			return rep, err
		}
		rep = Report{Stage: stage, Method: MethodLoop, Unsent: []Unsent{}, NotDeleted: []string{}}
	}
	err = d.loop(ctx, stage, q, max, &rep, progress)
	if err == nil && len(rep.Unsent) > 0 {
		err = &UnsentError{Stage: stage, Unsent: rep.Unsent}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func (d *Manager) loop(ctx context.Context, stage pipeline.Stage, q Queue, max int, rep *Report, progress func(Page)) error {
	began := time.Now()
	held, hidden, err := d.held(ctx, q.DLQURL)
	if err != nil {
		return fmt.Errorf("read %s DLQ depth: %w", stage, err)
	}
	rep.Held, rep.InFlight = held, hidden
	if max <= 0 {
		max = held
	}
	max = min(max, held)
	movedIDs := map[string]bool{}
	// Messages the stage queue did not accept stay hidden in the DLQ until
	// the redrive ends (newest receipt per message), then are released.
	kept := map[string]string{}
	defer func() {
		r := make([]string, 0, len(kept))
		for _, h := range kept {
			r = append(r, h)
		}
		d.release(q.DLQURL, r)
	}()
	for rep.Moved+len(kept) < max {
		resp, err := d.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &q.DLQURL, MaxNumberOfMessages: int32(min(10, max-rep.Moved-len(kept))), VisibilityTimeout: redriveVisibility, WaitTimeSeconds: 1,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			return fmt.Errorf("receive from %s DLQ: %w", stage, err)
		}
		var back, msgs []types.Message
		for _, m := range resp.Messages {
			id := aws.ToString(m.MessageId)
			switch {
			case kept[id] != "":
				// Not accepted earlier and visible again: keep it hidden.
				kept[id] = aws.ToString(m.ReceiptHandle)
			case movedIDs[id] || sentAfter(m, began):
				back = append(back, m)
			default:
				msgs = append(msgs, m)
			}
		}
		if len(back) > 0 {
			d.release(q.DLQURL, receipts(back))
		}
		if len(msgs) == 0 {
			if len(resp.Messages) == 0 || len(back) > 0 {
				return nil
			}
			continue
		}
		entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
		for i, m := range msgs {
			attrs := map[string]types.MessageAttributeValue{}
			for k, v := range m.MessageAttributes {
				if !deadLetterAttrs[k] {
					attrs[k] = v
				}
			}
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body, MessageAttributes: attrs}
		}
		res := d.send(ctx, q.URL, entries)
		for _, id := range res.sent {
			movedIDs[id] = true
		}
		var done []types.Message
		page := Page{Number: rep.Pages + 1}
		for i, m := range msgs {
			if u, refused := res.failed[strconv.Itoa(i)]; refused {
				u.MessageID = aws.ToString(m.MessageId)
				rep.Unsent = append(rep.Unsent, u)
				kept[u.MessageID] = aws.ToString(m.ReceiptHandle)
				page.Unsent++
				continue // not accepted: it stays in the DLQ
			}
			done = append(done, m)
		}
		if err := d.delete(ctx, q.DLQURL, done); err != nil {
			// Sent but still in the DLQ: a later redrive sends them again,
			// which the idempotent handlers absorb.
			for _, m := range done {
				rep.NotDeleted = append(rep.NotDeleted, aws.ToString(m.MessageId))
			}
			rep.Pages++
			return fmt.Errorf("delete redriven messages from %s DLQ (they are in both queues): %w", stage, err)
		}
		rep.Moved += len(done)
		rep.Pages++
		page.Moved, page.TotalMoved, page.TotalUnsent, page.Of = len(done), rep.Moved, len(rep.Unsent), max
		if progress != nil {
			progress(page)
		}
		if res.err != nil {
			return fmt.Errorf("send to %s queue: %w", stage, res.err)
		}
	}
	return nil
}

// held returns the messages in a queue, visible or not, and the hidden.
func (d *Manager) held(ctx context.Context, url string) (int, int, error) {
	names := []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}
	out, err := d.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: names})
	if err != nil {
		return 0, 0, err
	}
	visible, _ := strconv.Atoi(out.Attributes[string(names[0])])
	hidden, _ := strconv.Atoi(out.Attributes[string(names[1])])
	return visible + hidden, hidden, nil
}

// sentAfter reports whether SQS received m after t (SQS's clock; a skew
// can only end a redrive early, never move a message twice).
func sentAfter(m types.Message, t time.Time) bool {
	ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	return err == nil && time.UnixMilli(ms).After(t)
}

// maxBatchBytes is SendMessageBatch's limit on the sum of its messages.
const maxBatchBytes = 256 * 1024

// EntryAttempts is how often a redrive sends an entry that SendMessageBatch
// fails with a retryable error, unless Manager.EntryAttempts says otherwise.
const EntryAttempts = 4

type sendResult struct {
	// failed are the entries (by entry id) not accepted, with AWS's reason.
	failed map[string]Unsent
	// sent are the stage queue's message ids of the accepted entries.
	sent []string
	// err is the error of a request that failed as a whole.
	err error
}

// send sends entries in as few batches as the size limit allows. Entries
// that fail with an error AWS calls retryable are sent again after a
// back-off, up to the manager's entry attempts; a request that fails as a
// whole (after the SDK's own retries) fails its entries and ends the send.
func (d *Manager) send(ctx context.Context, url string, entries []types.SendMessageBatchRequestEntry) sendResult {
	res := sendResult{failed: map[string]Unsent{}}
	attempts := cmp.Or(d.EntryAttempts, EntryAttempts)
	backoff := d.Backoff
	if backoff == nil {
		backoff = retry.NewExponentialJitterBackoff(5 * time.Second)
	}
	for attempt := 1; len(entries) > 0; attempt++ {
		var again []types.SendMessageBatchRequestEntry
		var lastErr error
		for rest := entries; len(rest) > 0; {
			n, size := 0, 0
			for n < len(rest) && (n == 0 || size+entryBytes(rest[n]) <= maxBatchBytes) {
				size += entryBytes(rest[n])
				n++
			}
			chunk := rest[:n]
			rest = rest[n:]
			out, err := d.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: chunk})
			if err != nil {
				// The SDK has retried it where AWS allows: the request's
				// entries, and those not yet sent, stay in the DLQ.
				code, msg := errorCode(err)
				u := Unsent{Code: code, Reason: msg, Retryable: retryables.IsErrorRetryable(err).Bool()}
				for _, e := range chunk {
					res.failed[aws.ToString(e.Id)] = u
				}
				for _, e := range rest {
					res.failed[aws.ToString(e.Id)] = u
				}
				res.err = err
				return res
			}
			for _, ok := range out.Successful {
				res.sent = append(res.sent, aws.ToString(ok.MessageId))
				delete(res.failed, aws.ToString(ok.Id))
			}
			for _, f := range out.Failed {
				id := aws.ToString(f.Id)
				u := Unsent{Code: aws.ToString(f.Code), Reason: aws.ToString(f.Message), Retryable: entryRetryable(f)}
				res.failed[id] = u
				if u.Retryable && attempt < attempts {
					for _, e := range chunk {
						if aws.ToString(e.Id) == id {
							again = append(again, e)
						}
					}
					lastErr = fmt.Errorf("%s: %s", u.Code, u.Reason)
				}
			}
		}
		entries = again
		if len(entries) == 0 {
			break
		}
		delay, err := backoff.BackoffDelay(attempt, lastErr)
		if err != nil {
			break
		}
		if d.Log != nil {
			d.Log.Warn("stage queue refused entries of a redriven page; sending them again", zap.Int("entries", len(entries)), zap.Int("attempt", attempt), zap.Duration("after", delay), zap.Error(lastErr))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return res
		case <-t.C:
		}
	}
	return res
}

// retryables are the SDK's rules for a retryable request error.
var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// entryRetryable says whether a failed SendMessageBatch entry may be sent
// again: AWS marks a fault of its own (not the caller's) with SenderFault
// false; a throttled entry is retryable whoever is at fault.
func entryRetryable(f types.BatchResultErrorEntry) bool {
	code := aws.ToString(f.Code)
	_, throttle := retry.DefaultThrottleErrorCodes[code]
	return !f.SenderFault || throttle || strings.HasSuffix(code, "ThrottlingException")
}

// errorCode returns an API error's code and message, or "" and the error.
func errorCode(err error) (string, string) {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode(), api.ErrorMessage()
	}
	return "", err.Error()
}

func entryBytes(e types.SendMessageBatchRequestEntry) int {
	n := len(aws.ToString(e.MessageBody))
	for k, v := range e.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

func receipts(msgs []types.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = aws.ToString(m.ReceiptHandle)
	}
	return out
}

func (d *Manager) delete(ctx context.Context, url string, msgs []types.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
	}
	// The messages are in the stage queue now: finish the delete even if
	// the request that asked for the redrive went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := d.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
	if err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return errors.New(aws.ToString(out.Failed[0].Code) + ": " + aws.ToString(out.Failed[0].Message))
	}
	return nil
}

// moveTask runs SQS's own redrive and waits for it to finish, reporting
// its progress as SQS counts it.
func (d *Manager) moveTask(ctx context.Context, q Queue, rep *Report, progress func(Page)) error {
	arn := func(url string) (string, error) {
		out, err := d.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
	}
	src, err := arn(q.DLQURL)
	if err != nil {
		return err
	}
	dst, err := arn(q.URL)
	if err != nil {
		return err
	}
	started, err := d.SQS.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &src, DestinationArn: &dst})
	if err != nil {
		return err
	}
	handle := aws.ToString(started.TaskHandle)
	for {
		out, err := d.SQS.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &src, MaxResults: aws.Int32(1)})
		if err != nil {
			return fmt.Errorf("message move task %s: %w", handle, err)
		}
		if len(out.Results) > 0 {
			r := out.Results[0]
			rep.Held, rep.Moved = int(aws.ToInt64(r.ApproximateNumberOfMessagesToMove)), int(r.ApproximateNumberOfMessagesMoved)
			if progress != nil && rep.Moved > 0 {
				rep.Pages++
				progress(Page{Number: rep.Pages, TotalMoved: rep.Moved, Of: rep.Held})
			}
			switch aws.ToString(r.Status) {
			case "COMPLETED":
				return nil
			case "FAILED", "CANCELLED":
				// SQS moved what it counts; the rest is still in the DLQ.
				return fmt.Errorf("message move task %s %s after moving %d: %s; the messages not moved are still in the DLQ",
					handle, aws.ToString(r.Status), rep.Moved, aws.ToString(r.FailureReason))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("message move task %s still running (SQS finishes it): %w", handle, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func unsupported(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "InvalidAction", "UnknownOperationException", "NotImplemented", "InternalFailure", "UnknownError":
			return true
		}
	}
	var de *smithy.DeserializationError
	return errors.As(err, &de)
}
