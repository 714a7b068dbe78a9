// Package topology reads the declarative resource list (deploy/topology.json)
// and provisions it on any AWS endpoint. Terraform reads the same file, so
// there is no second hand-written list of queues, rules, tables or topics.
package topology

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudcommerce/cloudcommerce/deploy"
	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

// Topology is the decoded topology file. Every Name is a suffix; the AWS
// name is <prefix>-<name>, and the bus is named <prefix>.
type Topology struct {
	EventSource string  `json:"event_source"`
	Queues      []Queue `json:"queues"`
	Rules       []Rule  `json:"rules"`
	Tables      []Table `json:"tables"`
	Topic       Topic   `json:"topic"`
}

// Queue is a stage queue with its dead-letter queue.
type Queue struct {
	Stage                    pipeline.Stage `json:"stage"`
	Name                     string         `json:"name"`
	VisibilityTimeoutSeconds int            `json:"visibility_timeout_seconds"`
	ReceiveWaitTimeSeconds   int            `json:"receive_wait_time_seconds"`
	MessageRetentionSeconds  int            `json:"message_retention_seconds"`
	MaxMessageSizeBytes      int            `json:"max_message_size_bytes"`
	DLQ                      DLQ            `json:"dlq"`
}

// DLQ is a dead-letter queue and the redrive setting that feeds it.
type DLQ struct {
	Name                    string `json:"name"`
	MaxReceiveCount         int    `json:"max_receive_count"`
	MessageRetentionSeconds int    `json:"message_retention_seconds"`
}

// Rule routes events matching a pattern to a stage queue.
type Rule struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	EventPattern json.RawMessage `json:"event_pattern"`
	TargetStage  pipeline.Stage  `json:"target_stage"`
	TargetDLQ    string          `json:"target_dlq"`
	RetryPolicy  RetryPolicy     `json:"retry_policy"`
}

// RetryPolicy is EventBridge's retry policy for a rule target.
type RetryPolicy struct {
	MaximumEventAgeSeconds int `json:"maximum_event_age_seconds"`
	MaximumRetryAttempts   int `json:"maximum_retry_attempts"`
}

// Key is a DynamoDB key attribute.
type Key struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Index is a global secondary index.
type Index struct {
	Name     string `json:"name"`
	HashKey  Key    `json:"hash_key"`
	RangeKey *Key   `json:"range_key,omitempty"`
	// Projection is what the index copies of an item besides the keys;
	// absent means ALL.
	Projection *Projection `json:"projection,omitempty"`
}

// Projection is a global secondary index's projection: Type is ALL,
// KEYS_ONLY or INCLUDE (then NonKeyAttributes names the attributes).
type Projection struct {
	Type             string   `json:"type"`
	NonKeyAttributes []string `json:"non_key_attributes,omitempty"`
}

// ProjectionType is the index's projection type, ALL when none is given.
func (ix Index) ProjectionType() string {
	if ix.Projection == nil || ix.Projection.Type == "" {
		return "ALL"
	}
	return ix.Projection.Type
}

// Table is a DynamoDB table.
type Table struct {
	Role                   string  `json:"role"`
	Name                   string  `json:"name"`
	HashKey                Key     `json:"hash_key"`
	RangeKey               *Key    `json:"range_key,omitempty"`
	GlobalSecondaryIndexes []Index `json:"global_secondary_indexes,omitempty"`
	TTLAttribute           string  `json:"ttl_attribute,omitempty"`
}

// Topic is the notifications topic.
type Topic struct {
	Name     string   `json:"name"`
	Events   []string `json:"events"`
	Channels []string `json:"channels"`
}

// Load returns the embedded topology, validated.
func Load() (*Topology, error) { return Parse(deploy.TopologyJSON) }

// Parse decodes and validates a topology document.
func Parse(b []byte) (*Topology, error) {
	var t Topology
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("invalid topology: %w", err)
	}
	return &t, nil
}

func (t *Topology) validate() error {
	var errs []error
	if t.EventSource != pipeline.EventSource {
		errs = append(errs, fmt.Errorf("event_source must be %q", pipeline.EventSource))
	}
	for _, st := range pipeline.Stages {
		q, ok := t.Queue(st)
		if !ok {
			errs = append(errs, fmt.Errorf("no queue for stage %s", st))
			continue
		}
		if q.DLQ.Name == "" || q.DLQ.MaxReceiveCount < 1 {
			errs = append(errs, fmt.Errorf("queue %s needs a dlq with max_receive_count >= 1", q.Name))
		}
		if q.VisibilityTimeoutSeconds < 1 {
			errs = append(errs, fmt.Errorf("queue %s needs visibility_timeout_seconds >= 1", q.Name))
		}
	}
	for _, r := range t.Rules {
		if _, ok := t.Queue(r.TargetStage); !ok {
			errs = append(errs, fmt.Errorf("rule %s targets unknown stage %q", r.Name, r.TargetStage))
		}
		if r.TargetDLQ == "" {
			errs = append(errs, fmt.Errorf("rule %s has no target_dlq", r.Name))
		}
		if !json.Valid(r.EventPattern) {
			errs = append(errs, fmt.Errorf("rule %s has an invalid event_pattern", r.Name))
		}
	}
	for _, tb := range t.Tables {
		for _, ix := range tb.GlobalSecondaryIndexes {
			switch pt := ix.ProjectionType(); {
			case pt != "ALL" && pt != "KEYS_ONLY" && pt != "INCLUDE":
				errs = append(errs, fmt.Errorf("index %s of table %s: projection type %q is not ALL, KEYS_ONLY or INCLUDE", ix.Name, tb.Name, pt))
			case (pt == "INCLUDE") != (ix.Projection != nil && len(ix.Projection.NonKeyAttributes) > 0):
				errs = append(errs, fmt.Errorf("index %s of table %s: non_key_attributes go with projection INCLUDE, and only with it", ix.Name, tb.Name))
			}
		}
	}
	for _, role := range []string{"orders", "inventory", "idempotency", "payments_ledger"} {
		if _, ok := t.Table(role); !ok {
			errs = append(errs, fmt.Errorf("no table with role %s", role))
		}
	}
	if t.Topic.Name == "" {
		errs = append(errs, errors.New("no topic name"))
	}
	return errors.Join(errs...)
}

// Queue returns the queue of a stage.
func (t *Topology) Queue(st pipeline.Stage) (Queue, bool) {
	for _, q := range t.Queues {
		if q.Stage == st {
			return q, true
		}
	}
	return Queue{}, false
}

// Table returns the table with a role.
func (t *Topology) Table(role string) (Table, bool) {
	for _, tb := range t.Tables {
		if tb.Role == role {
			return tb, true
		}
	}
	return Table{}, false
}

// Names are the AWS names of the resources for one prefix.
type Names struct {
	Prefix string
	Bus    string
	// Queues and DLQs by stage.
	Queues map[pipeline.Stage]string
	DLQs   map[pipeline.Stage]string
	// Tables by role.
	Tables map[string]string
	Topic  string
}

// Names returns the AWS resource names for prefix.
func (t *Topology) Names(prefix string) Names {
	nm := Names{
		Prefix: prefix,
		Bus:    prefix,
		Queues: map[pipeline.Stage]string{},
		DLQs:   map[pipeline.Stage]string{},
		Tables: map[string]string{},
		Topic:  prefix + "-" + t.Topic.Name,
	}
	for _, q := range t.Queues {
		nm.Queues[q.Stage] = prefix + "-" + q.Name
		nm.DLQs[q.Stage] = prefix + "-" + q.DLQ.Name
	}
	for _, tb := range t.Tables {
		nm.Tables[tb.Role] = prefix + "-" + tb.Name
	}
	return nm
}

// MaxReceives returns the maxReceiveCount of the stage's queue (the
// deliveries before SQS moves a message to its DLQ), or 0 for a stage it
// does not list.
func (t *Topology) MaxReceives(st pipeline.Stage) int {
	q, _ := t.Queue(st)
	return q.DLQ.MaxReceiveCount
}
