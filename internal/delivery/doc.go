// Package delivery is the one policy for what happens to a queue message
// around and after its handler, shared by the SQS consumer (internal/queue)
// and the Lambda adapter (internal/lambda).
//
// A handler is a plain pipeline.Handler. Recovery, the per-message
// deadline and the duration metric wrap it as Middleware, composed once in
// the wiring with Chain (tracing, which lives in internal/trace, is one
// more middleware the worker adds). The adapters decode the body once
// (NewMessage), run the chain, and hand the result to Classify, the only
// function that decides what becomes of the message:
//
//   - nil error: Acknowledge (the consumer deletes it in a batch; Lambda's
//     event source mapping deletes a record not reported as failed);
//   - pipeline.DeferredError (an event a newer release wrote: a higher
//     schema_version, or a detail-type of the pipeline's source this
//     release does not know): Defer — neither acted on nor dead-lettered,
//     handed back through the message's visibility timeout with a
//     back-off (DeferDelay) that keeps it in its queue for at least
//     DeferWindow (30 minutes) over the queue's maxReceiveCount
//     deliveries, so a task of the newer release takes it during a
//     deploy; counted in cloudcommerce_deliveries_deferred_total and logged
//     at most once a minute per stage and reason;
//   - pipeline.PermanentError: DeadLetter with its reason — copied to the
//     stage's DLQ with the dead-letter attributes (Attr*), then
//     acknowledged; never retried;
//   - any other error, or a panic: Retry after an exponential back-off
//     with jitter (Backoff), set through the message's visibility timeout;
//     after the queue's maxReceiveCount SQS moves it to the DLQ itself.
//
// A Settler carries the decision out against SQS (DLQ copy, back-off
// visibility) and writes the log lines and metrics of every outcome, the
// same for both adapters.
package delivery
