package console

import (
	"context"

	"github.com/cloudcommerce/cloudcommerce/internal/ops/dlq"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// DeadLetter is one message in a stage's DLQ, as the console shows it (never
// its body, which holds the customer's contact details and payment token).
type DeadLetter = dlq.DeadLetter

// Queue is a stage queue and its DLQ.
type Queue = dlq.Queue

// ReasonMaxReceives is the reason shown for a message SQS itself moved to
// the DLQ after the queue's maxReceiveCount.
const ReasonMaxReceives = dlq.ReasonMaxReceives

// DeadLetters reads and redrives the stage DLQs. Implementations are safe
// for concurrent use; ctx bounds each call.
type DeadLetters interface {
	// List returns up to a page of the stage's dead-lettered messages
	// without consuming them: each stays in the DLQ.
	List(ctx context.Context, stage pipeline.Stage) ([]DeadLetter, error)
	// Redrive moves up to max messages from the stage's DLQ back to the
	// stage queue and returns how many moved. A message is deleted from the
	// DLQ only after the stage queue accepted it, so none is ever lost; a
	// failure between the two leaves a duplicate, which the idempotent
	// handlers absorb.
	Redrive(ctx context.Context, stage pipeline.Stage, max int) (int, error)
}

var _ DeadLetters = (*dlq.Manager)(nil)
