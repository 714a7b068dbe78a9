package metrics

import (
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// The label values each vector is initialised with, so that /metrics of a
// worker that has done nothing yet lists every family and every series a
// dashboard or a rate() alert selects, at 0. Values outside these sets
// (AWS error codes, other HTTP codes) appear on first use.
var (
	// HandledOutcomes are the outcome label values of messages_handled_total:
	// the handler outcomes, then the consumer's own.
	HandledOutcomes = []string{string(pipeline.OutcomeOK), string(pipeline.OutcomeRejected), string(pipeline.OutcomeDuplicate),
		string(pipeline.OutcomeConflict), "retried", "deferred", "dead_lettered"}
	// DeadLetterReasons are the reasons a message is dead-lettered at once.
	DeadLetterReasons = []string{pipeline.ReasonMalformed, pipeline.ReasonWrongEvent, pipeline.ReasonTooLarge,
		pipeline.ReasonNotFound, pipeline.ReasonInvalid}
	// AckOps are the acknowledgements that can fail: deleting a handled
	// message, releasing one on shutdown, extending a slow one's visibility,
	// setting a retry's backoff.
	AckOps = []string{"delete", "release", "extend", "backoff"}
	// BatchKinds are the batched requests.
	BatchKinds = []string{"receive", "delete", "visibility", "events", "notifications"}
	// Queues and QueueStates label the sampled queue depths.
	Queues      = []string{"main", "dlq"}
	QueueStates = []string{"visible", "in_flight", "delayed"}
	// AWSOperations are the AWS API operations a running worker makes, by
	// service ID (the service label): the pipeline's, the queue sampler's,
	// the stuck-order sweep's and the operations console's. Their "ok"
	// series exist from the start. The one-shot `worker provision` and the
	// sandbox providers' ledger are left out.
	AWSOperations = map[string][]string{
		"SQS": {"ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
			"SendMessage", "SendMessageBatch", "GetQueueAttributes", "GetQueueUrl", "StartMessageMoveTask", "ListMessageMoveTasks"},
		"DynamoDB":    {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "Query", "Scan", "TransactWriteItems", "TransactGetItems"},
		"EventBridge": {"PutEvents"},
		"SNS":         {"Publish", "PublishBatch", "CreateTopic"},
	}
	// IntakeRoutes are the intake API's routes and the code each answers on
	// success.
	IntakeRoutes = map[string]string{"place_order": "202", "get_order": "200", "cancel_order": "200", "put_inventory": "200", "get_inventory": "200", "adjust_inventory": "200", "list_orders": "200"}
)

// initSeries creates every known series at 0.
func (m *Metrics) initSeries() {
	for _, st := range pipeline.Stages {
		s := string(st)
		m.Received.WithLabelValues(s)
		for _, o := range HandledOutcomes {
			m.Handled.WithLabelValues(s, o)
		}
		m.HandlerDuration.WithLabelValues(s)
		m.PoolSize.WithLabelValues(s)
		m.Panics.WithLabelValues(s)
		for _, r := range DeadLetterReasons {
			m.DeadLettered.WithLabelValues(s, r)
		}
		for _, r := range pipeline.DeferReasons {
			m.Deferred.WithLabelValues(s, r)
		}
		m.Extended.WithLabelValues(s)
		for _, op := range AckOps {
			m.AckFailures.WithLabelValues(s, op)
		}
		for _, q := range Queues {
			for _, state := range QueueStates {
				m.QueueMessages.WithLabelValues(s, q, state)
			}
		}
		m.QueueOldest.WithLabelValues(s)
	}
	for _, from := range pipeline.AllStatuses {
		if from.Final() {
			m.OrderLatency.WithLabelValues(string(from))
		}
		for _, to := range pipeline.AllStatuses {
			if pipeline.CanTransition(from, to) {
				m.Transitions.WithLabelValues(string(from), string(to))
			}
		}
	}
	// What the stuck-order sweep re-publishes: orders in progress, and
	// cancellations whose refund was not recorded.
	for _, st := range pipeline.AllStatuses {
		if !st.Final() || st == pipeline.StatusCancelled {
			m.Republished.WithLabelValues(string(st))
		}
	}
	for svc, ops := range AWSOperations {
		m.AWSConnections.WithLabelValues(svc)
		for _, op := range ops {
			m.AWSRequests.WithLabelValues(svc, op, "ok")
		}
	}
	for _, op := range []string{"PutItem", "UpdateItem", "TransactWriteItems"} {
		m.AWSContention.WithLabelValues("DynamoDB", op, "ConditionalCheckFailed")
	}
	m.AWSContention.WithLabelValues("DynamoDB", "TransactWriteItems", "TransactionConflict")
	for _, k := range BatchKinds {
		m.BatchSize.WithLabelValues(k)
	}
	for route, code := range IntakeRoutes {
		m.Intake.WithLabelValues(route, code)
	}
}
