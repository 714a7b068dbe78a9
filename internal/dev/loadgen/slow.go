package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// DefaultSlowThreshold is the placed→final time over which an order is
// recorded with its timeline (Config.SlowThreshold).
const DefaultSlowThreshold = 5 * time.Second

// SlowOrder is an order that took longer than the threshold, with where
// the time went.
type SlowOrder struct {
	ID string `json:"order_id"`
	// Transient is set for an order paid with the token that fails twice
	// on purpose: its payment backs off by design.
	Transient bool    `json:"transient"`
	Status    string  `json:"status"`
	TotalMs   float64 `json:"total_ms"`
	// Spans are the order's history, one per transition: the stage that
	// made it and how long after the previous one it was recorded.
	Spans []Span `json:"spans"`
	// Slowest is the span that took longest.
	Slowest Span `json:"slowest"`
	// Attempts are the worker's log lines about this order (handled with
	// a retry, a dead letter, a redelivery), added by Explain.
	Attempts []Attempt `json:"attempts,omitempty"`
	// Cause says why, from the spans and the attempts (Explain).
	Cause string `json:"cause,omitempty"`
}

// Span is one transition of an order's history.
type Span struct {
	From  pipeline.Status `json:"from"`
	To    pipeline.Status `json:"to"`
	Stage string          `json:"stage"`
	At    time.Time       `json:"at"`
	Ms    float64         `json:"ms"`
}

// Attempt is one worker log line naming the order.
type Attempt struct {
	At           time.Time `json:"at"`
	Stage        string    `json:"stage"`
	ReceiveCount int       `json:"receive_count"`
	Message      string    `json:"message"`
	Error        string    `json:"error,omitempty"`
}

// stageOf names the stage that makes a transition.
func stageOf(to pipeline.Status) string {
	switch to {
	case pipeline.StatusReserved, pipeline.StatusRejected:
		return string(pipeline.StageInventory)
	case pipeline.StatusPaid, pipeline.StatusPaymentFailed:
		return string(pipeline.StagePayment)
	case pipeline.StatusShipped:
		return string(pipeline.StageShipping)
	}
	return "any"
}

// slowOrder builds the record of o from its history.
func slowOrder(o pipeline.Order, transient bool) SlowOrder {
	s := SlowOrder{ID: o.ID, Transient: transient, Status: string(o.Status), TotalMs: ms(o.UpdatedAt.Sub(o.PlacedAt))}
	tl := o.Timeline()
	for i := 1; i < len(tl); i++ {
		sp := Span{From: tl[i-1].Status, To: tl[i].Status, Stage: stageOf(tl[i].Status), At: tl[i].At, Ms: ms(tl[i].At.Sub(tl[i-1].At))}
		s.Spans = append(s.Spans, sp)
		if sp.Ms > s.Slowest.Ms {
			s.Slowest = sp
		}
	}
	return s
}

// Explain adds to each slow order the worker log lines (zap JSON, one
// object a line, as `worker run` writes them) that name it, and a cause:
//
//   - a retry: the handler failed and the message was given its back-off
//     (at most CLOUDCOMMERCE_RETRY_BASE << (receives-1), whole seconds);
//     the time it then stayed visible before the worker received it again
//     is the receive gap. A gap of seconds with the worker's pollers
//     parked in long polls is the emulator's: kumo wakes a parked long poll
//     only on a send, not when a message's visibility expires (KUMO.md gap
//     3), where SQS answers as soon as the message is visible again.
//   - no log line: the order waited its turn in the stage's queue.
//
// retryBase is the worker's CLOUDCOMMERCE_RETRY_BASE.
func Explain(slow []SlowOrder, retryBase time.Duration, logs ...io.Reader) error {
	want := map[string]int{}
	for i, s := range slow {
		want[s.ID] = i
	}
	for _, l := range logs {
		sc := bufio.NewScanner(l)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), `"order_id"`) {
				continue
			}
			var e struct {
				Time         string `json:"time"`
				Msg          string `json:"msg"`
				Stage        string `json:"stage"`
				OrderID      string `json:"order_id"`
				ReceiveCount int    `json:"receive_count"`
				Error        string `json:"error"`
			}
			if json.Unmarshal(line, &e) != nil {
				continue
			}
			i, ok := want[e.OrderID]
			if !ok {
				continue
			}
			at, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.Time)
			if err != nil {
				continue
			}
			slow[i].Attempts = append(slow[i].Attempts, Attempt{At: at, Stage: e.Stage, ReceiveCount: e.ReceiveCount, Message: e.Msg, Error: e.Error})
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	for i := range slow {
		s := &slow[i]
		sort.Slice(s.Attempts, func(a, b int) bool { return s.Attempts[a].At.Before(s.Attempts[b].At) })
		s.Cause = cause(s, retryBase)
	}
	return nil
}

// cause explains the slowest span of s from its attempts.
func cause(s *SlowOrder, retryBase time.Duration) string {
	var retries []Attempt
	for _, a := range s.Attempts {
		if a.Stage == s.Slowest.Stage && a.Message == "handler failed; will retry" {
			retries = append(retries, a)
		}
	}
	if len(retries) == 0 {
		return fmt.Sprintf("queued %.1f s in %s with no retry or redelivery logged (a backlog)", s.Slowest.Ms/1000, s.Slowest.Stage)
	}
	// Each retry's message is visible again at most its back-off after
	// the failure; the next attempt (or the transition) shows when it was
	// received again.
	var parts []string
	var gapTotal, backoffTotal time.Duration
	for k, a := range retries {
		backoff := retryBase << max(a.ReceiveCount-1, 0)
		backoff = (backoff + time.Second - 1).Truncate(time.Second)
		next := s.Slowest.At
		if k+1 < len(retries) {
			next = retries[k+1].At
		}
		gap := max(next.Sub(a.At)-backoff, 0)
		gapTotal += gap
		backoffTotal += backoff
		parts = append(parts, fmt.Sprintf("receive %d failed at %s (%s), back-off ≤ %s, received again %.1f s after it was visible",
			a.ReceiveCount, a.At.Format("15:04:05.000"), short(s.ID, a.Error), backoff, gap.Seconds()))
	}
	verdict := "deliberate back-off"
	if gapTotal > 2*time.Second {
		verdict = fmt.Sprintf("%.1f s of it visible but not received: the emulator's long poll did not wake when the visibility expired (KUMO.md gap 3)", gapTotal.Seconds())
	}
	return fmt.Sprintf("%s: %d retr%s in %s, back-offs %s; %s", verdict, len(retries), map[bool]string{true: "y", false: "ies"}[len(retries) == 1],
		s.Slowest.Stage, backoffTotal, strings.Join(parts, "; "))
}

// short is an error without the order id it repeats, cut to 80 bytes.
func short(id, err string) string {
	if i := strings.LastIndex(err, id); i >= 0 {
		err = strings.TrimLeft(err[i+len(id):], ": ")
	}
	if len(err) > 80 {
		return err[:80] + "…"
	}
	return err
}
