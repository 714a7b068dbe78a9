package awsconf

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// RecordCallsEnv names the file to which every client built by Load appends
// the AWS calls it makes, one JSON line per distinct (process, command,
// stage, service, operation, resources). Package config reads it into
// Options.RecordTo. The test suites set it when they run the shipped
// binaries, and deploy/terraform's IAM test checks what was recorded
// against the roles' policies. Unset (always, in production) nothing is
// recorded.
const RecordCallsEnv = "CLOUDCOMMERCE_TEST_RECORD_CALLS"

// Call is one recorded AWS call.
type Call struct {
	// Process is the executable's base name ("worker", "bootstrap").
	Process string `json:"process"`
	// Command is the subcommand ("run", "dlq list", "healthcheck"), if any.
	Command string `json:"command,omitempty"`
	// Stage is CLOUDCOMMERCE_STAGE, which pins a Lambda function to its stage.
	Stage     string `json:"stage,omitempty"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	// Resources are "<kind>:<name>" (queue, table, index, bus, topic,
	// secret): queue names, not URLs; table indexes as table/index/name.
	// For TransactWriteItems and TransactGetItems, "<ItemAction>@table:<name>"
	// per item kind.
	Resources []string `json:"resources,omitempty"`
	// Writes, on a line of its own per DynamoDB write request when the
	// recorder records writes, are the items the request wrote; Failed
	// says the request returned an error (a failed condition, a cancelled
	// transaction: DynamoDB still charges the write units of the items).
	Writes []Write `json:"writes,omitempty"`
	Failed bool    `json:"failed,omitempty"`
}

// Recorder appends calls to a file. Safe for concurrent use; each distinct
// call is written once per process.
type Recorder struct {
	mu      sync.Mutex
	f       *os.File
	seen    map[string]bool
	process string
	command string
	stage   string
	// writes: also record each DynamoDB write request (Call.Writes).
	writes bool
}

var (
	processRecordersMu sync.Mutex
	processRecorders   = map[[2]string]*Recorder{} // path, stage
)

// processRecorder returns the process's one recorder for path and stage,
// so that every client a binary builds records through it.
func processRecorder(path, stage string, writes bool) (*Recorder, error) {
	processRecordersMu.Lock()
	defer processRecordersMu.Unlock()
	key := [2]string{path, stage}
	if r, ok := processRecorders[key]; ok {
		return r, nil
	}
	r, err := NewRecorder(path, stage)
	if err != nil {
		return nil, err
	}
	r.writes = writes
	processRecorders[key] = r
	return r, nil
}

// NewRecorderAs is NewRecorder for a shipped component run inside another
// process (a test): its calls are recorded as process and command's.
func NewRecorderAs(path, process, command, stage string) (*Recorder, error) {
	r, err := NewRecorder(path, stage)
	if err != nil {
		return nil, err
	}
	r.process, r.command = process, command
	return r, nil
}

// WithWrites makes r also record each DynamoDB write request
// (Call.Writes), as RecordWritesEnv does for a binary, and returns r. Call
// it before r records.
func (r *Recorder) WithWrites() *Recorder {
	r.writes = true
	return r
}

// NewRecorder opens (appending) the file at path. Calls are recorded as
// this process's (its executable's name and subcommand) and as stage's
// (CLOUDCOMMERCE_STAGE, which package config reads; "" for none).
func NewRecorder(path, stage string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s file: %w", RecordCallsEnv, err)
	}
	r := &Recorder{f: f, seen: map[string]bool{}, process: filepath.Base(os.Args[0]), stage: stage}
	var cmd []string
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-") || len(cmd) == 2 {
			break
		}
		cmd = append(cmd, a)
	}
	r.command = strings.Join(cmd, " ")
	return r, nil
}

// RecordWrites makes r also record each DynamoDB write request.
func (r *Recorder) RecordWrites() { r.writes = true }

func (r *Recorder) record(c Call) {
	c.Process, c.Command, c.Stage = r.process, r.command, r.stage
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Writes == nil {
		if r.seen[string(b)] {
			return
		}
		r.seen[string(b)] = true
	}
	// One write per line: O_APPEND keeps concurrent processes' lines whole.
	_, _ = r.f.Write(append(b, '\n'))
}

const recordCallsID = "cloudcommerceRecordCalls"

// middleware records each call once, before it is sent (a call AWS would
// refuse is recorded too: that is what the IAM test is for). A client has
// one recorder: a later one (Apply) replaces the one it had.
func (r *Recorder) middleware(s *middleware.Stack) error {
	if _, ok := s.Initialize.Get(recordCallsID); ok {
		if _, err := s.Initialize.Remove(recordCallsID); err != nil {
			return err
		}
	}
	return s.Initialize.Add(middleware.InitializeMiddlewareFunc(recordCallsID,
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op, svc := awsmiddleware.GetOperationName(ctx), awsmiddleware.GetServiceID(ctx)
			r.record(Call{Service: svc, Operation: op, Resources: callResources(op, in.Parameters)})
			if !r.writes || svc != "DynamoDB" {
				return next.HandleInitialize(ctx, in)
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if w := writesOf(in.Parameters); len(w) > 0 {
				r.record(Call{Service: svc, Operation: op, Writes: w, Failed: err != nil})
			}
			return out, md, err
		}), middleware.After)
}

// callResources names the resources an operation's input addresses.
func callResources(op string, params any) []string {
	set := map[string]bool{}
	// Inputs that create or describe a topic or bus name it by Name.
	switch op {
	case "CreateTopic", "CreateEventBus", "DescribeEventBus":
		if v := reflect.Indirect(reflect.ValueOf(params)); v.Kind() != reflect.Struct {
			break
		} else if s, ok := stringField(v.FieldByName("Name")); ok {
			kind := "topic:"
			if op != "CreateTopic" {
				kind = "bus:"
			}
			set[kind+s] = true
		}
	}
	if tw, ok := params.(*dynamodb.TransactWriteItemsInput); ok {
		// IAM authorises each item by its own action on its table.
		for _, it := range tw.TransactItems {
			switch {
			case it.Put != nil:
				set["PutItem@table:"+deref(it.Put.TableName)] = true
			case it.Update != nil:
				set["UpdateItem@table:"+deref(it.Update.TableName)] = true
			case it.Delete != nil:
				set["DeleteItem@table:"+deref(it.Delete.TableName)] = true
			case it.ConditionCheck != nil:
				set["ConditionCheckItem@table:"+deref(it.ConditionCheck.TableName)] = true
			}
		}
	} else if tg, ok := params.(*dynamodb.TransactGetItemsInput); ok {
		// Likewise a read transaction: GetItem on each item's table.
		for _, it := range tg.TransactItems {
			if it.Get != nil {
				set["GetItem@table:"+deref(it.Get.TableName)] = true
			}
		}
	} else {
		walk(reflect.ValueOf(params), set, 0)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// walk collects the resource-naming string fields of an input struct.
func walk(v reflect.Value, set map[string]bool, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), set, depth+1)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i), set, depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		var table, index string
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			if !t.Field(i).IsExported() {
				continue
			}
			name := t.Field(i).Name
			if s, ok := stringField(f); ok {
				switch name {
				case "QueueUrl":
					set["queue:"+s[strings.LastIndex(s, "/")+1:]] = true
				case "QueueName":
					set["queue:"+s] = true
				case "SourceArn", "DestinationArn", "TopicArn", "TargetArn":
					set[arnResource(s)] = true
				case "TableName":
					table = s
				case "IndexName":
					index = s
				case "EventBusName":
					set["bus:"+s[strings.LastIndex(s, "/")+1:]] = true
				case "SecretId":
					set["secret:"+s] = true
				}
				continue
			}
			if name == "RequestItems" && f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String {
				for _, k := range f.MapKeys() {
					set["table:"+k.String()] = true
				}
				continue
			}
			walk(f, set, depth+1)
		}
		switch {
		case table != "" && index != "":
			set["index:"+table+"/index/"+index] = true
		case table != "":
			set["table:"+table] = true
		}
	}
}

func stringField(f reflect.Value) (string, bool) {
	if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.String {
		if f.IsNil() {
			return "", false
		}
		return f.Elem().String(), true
	}
	if f.Kind() == reflect.String && f.String() != "" && f.Type().Name() == "string" {
		return f.String(), true
	}
	return "", false
}

// arnResource turns an SQS, SNS or EventBridge ARN into "<kind>:<name>".
func arnResource(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return "arn:" + arn
	}
	switch parts[2] {
	case "sqs":
		return "queue:" + parts[5]
	case "sns":
		return "topic:" + parts[5]
	case "events":
		return "bus:" + strings.TrimPrefix(parts[5], "event-bus/")
	}
	return parts[2] + ":" + parts[5]
}

// Apply returns a copy of cfg whose clients record their calls with r
// alone (instead of any recorder cfg had).
func (r *Recorder) Apply(cfg aws.Config) aws.Config {
	cfg = cfg.Copy()
	cfg.APIOptions = append(append([]func(*middleware.Stack) error(nil), cfg.APIOptions...), r.middleware)
	return cfg
}
