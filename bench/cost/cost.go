// Package cost turns measured AWS requests per order into dollars per
// million orders at AWS list prices, so the effect of batching can be read
// as money. It is a model, not a bill: it prices what the benchmark
// measures (the worker's calls by operation, the events it puts, the
// messages EventBridge delivers, the write units its recorded DynamoDB
// writes cost, the CPU it burns) and states every assumption as a field
// with a default.
package cost

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Prices are AWS list prices in US dollars, us-east-1.
type Prices struct {
	// Date says when the prices were taken.
	Date string
	// SQSPerMillion: standard queue requests, each 64 KB chunk of a
	// request's payload counting as one request.
	SQSPerMillion float64
	// EventBridgePerMillion: custom events put on a bus, per 64 KB chunk
	// of an event (charged per event entry, not per PutEvents call).
	EventBridgePerMillion float64
	// DynamoDBWRUPerMillion and DynamoDBRRUPerMillion: on-demand write and
	// read request units. A write of an item up to 1 KB is 1 WRU; a
	// transactional write 2 WRU per KB; a strongly consistent read of up
	// to 4 KB 1 RRU.
	DynamoDBWRUPerMillion float64
	DynamoDBRRUPerMillion float64
	// SNSPerMillion: publishes, per 64 KB chunk (a PublishBatch entry
	// counts as one publish). Deliveries to SQS subscribers are free;
	// email ($2.00 per 100,000) and SMS are the customer-messaging bill
	// and are not modelled.
	SNSPerMillion float64
	// Fargate, Linux/x86.
	FargateVCPUHour float64
	FargateGBHour   float64
}

// ListPrices are the prices the model uses by default: us-east-1 list
// prices as published on 2026-11-25, not re-checked from the benchmark
// machine, which has no network.
var ListPrices = Prices{
	Date:                  "2026-11-25 (published list prices, us-east-1)",
	SQSPerMillion:         0.40,
	EventBridgePerMillion: 1.00,
	DynamoDBWRUPerMillion: 0.625,
	DynamoDBRRUPerMillion: 0.125,
	SNSPerMillion:         0.50,
	FargateVCPUHour:       0.04048,
	FargateGBHour:         0.004445,
}

// Input is one measured configuration.
type Input struct {
	Name string
	// Requests per order by "service operation", as the workers counted
	// them (plus a producer's PutEvents), without the sandbox ledger.
	Requests map[string]float64
	// Events is bus events per order (the producer's OrderPlaced plus the
	// workers' events).
	Events float64
	// Deliveries is messages EventBridge delivered to the stage queues per
	// order; SQS bills each as a SendMessage request.
	Deliveries float64
	// Notifications is SNS messages published per order (Publish calls
	// plus PublishBatch entries); when 0, the SNS Publish count.
	Notifications float64
	// WriteUnits are the DynamoDB write units per order by table and index
	// ("orders", "orders/by_open"), from the run's recorded writes
	// (RecordedWriteUnits): nothing about item sizes or index behaviour is
	// assumed. Without them the model prices no writes.
	WriteUnits map[string]float64
	// CPUMicrosPerOrder is the worker's CPU per order.
	CPUMicrosPerOrder float64
	// TaskVCPU, TaskGB and Utilization size the Fargate tasks the CPU runs
	// on: defaults 0.5 vCPU, 1 GB, 60% average CPU utilisation.
	TaskVCPU, TaskGB, Utilization float64
}

func (in *Input) defaults() {
	if in.TaskVCPU == 0 {
		in.TaskVCPU = 0.5
	}
	if in.TaskGB == 0 {
		in.TaskGB = 1
	}
	if in.Utilization == 0 {
		in.Utilization = 0.6
	}
}

// Line is one priced item.
type Line struct {
	Item string
	// Units per order and what they are.
	Units float64
	Unit  string
	// Dollars per million orders.
	PerMillion float64
}

// Estimate is the priced model of one configuration.
type Estimate struct {
	Name  string
	Lines []Line
	Total float64
}

// Model prices in.
func Model(p Prices, in Input) Estimate {
	in.defaults()
	e := Estimate{Name: in.Name}
	add := func(item, unit string, units, pricePerMillion float64) {
		if units <= 0 {
			return
		}
		l := Line{Item: item, Units: units, Unit: unit, PerMillion: units * pricePerMillion}
		e.Lines = append(e.Lines, l)
		e.Total += l.PerMillion
	}
	sqs, sns := 0.0, 0.0
	var rru float64
	keys := make([]string, 0, len(in.Requests))
	for k := range in.Requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := in.Requests[k]
		svc, op, _ := strings.Cut(k, " ")
		switch {
		case svc == "SQS":
			sqs += n
		case svc == "SNS" && op == "Publish":
			sns += n
		case svc == "DynamoDB" && (op == "GetItem" || op == "Query" || op == "BatchGetItem"):
			rru += n
		}
	}
	add("SQS requests (receive, delete, visibility, DLQ, sampling)", "requests", sqs, p.SQSPerMillion)
	add("SQS SendMessage by EventBridge (stage deliveries)", "requests", in.Deliveries, p.SQSPerMillion)
	add("EventBridge custom events", "events", in.Events, p.EventBridgePerMillion)
	targets := make([]string, 0, len(in.WriteUnits))
	for k := range in.WriteUnits {
		targets = append(targets, k)
	}
	sort.Strings(targets)
	for _, k := range targets {
		add("DynamoDB writes: "+k+" (recorded)", "WRU", in.WriteUnits[k], p.DynamoDBWRUPerMillion)
	}
	add("DynamoDB reads", "RRU", rru, p.DynamoDBRRUPerMillion)
	if in.Notifications > 0 {
		sns = in.Notifications
	}
	add("SNS publishes", "publishes", sns, p.SNSPerMillion)
	if in.CPUMicrosPerOrder > 0 {
		// A task at Utilization does TaskVCPU·Utilization CPU-seconds of
		// work per second, and is paid for every second it runs.
		taskSeconds := in.CPUMicrosPerOrder / 1e6 / (in.TaskVCPU * in.Utilization)
		perTaskSecond := (in.TaskVCPU*p.FargateVCPUHour + in.TaskGB*p.FargateGBHour) / 3600
		add(fmt.Sprintf("Fargate (%.2g vCPU / %.2g GB tasks at %.0f%% CPU)", in.TaskVCPU, in.TaskGB, in.Utilization*100), "task-s",
			taskSeconds, perTaskSecond*1e6)
	}
	return e
}

// Print writes estimates side by side as a Markdown table.
func Print(w io.Writer, p Prices, es ...Estimate) {
	items := []string{}
	seen := map[string]bool{}
	for _, e := range es {
		for _, l := range e.Lines {
			if !seen[l.Item] {
				seen[l.Item] = true
				items = append(items, l.Item)
			}
		}
	}
	fmt.Fprintf(w, "| $ per million orders (prices: %s) |", p.Date)
	for _, e := range es {
		fmt.Fprintf(w, " %s |", e.Name)
	}
	fmt.Fprint(w, "\n|---|")
	for range es {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, it := range items {
		fmt.Fprintf(w, "| %s |", it)
		for _, e := range es {
			v, units, unit := 0.0, 0.0, ""
			for _, l := range e.Lines {
				if l.Item == it {
					v, units, unit = l.PerMillion, l.Units, l.Unit
				}
			}
			if unit == "" {
				fmt.Fprint(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %.2f (%.3g %s) |", v, units, unit)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| **total** |")
	for _, e := range es {
		fmt.Fprintf(w, " **%.2f** |", e.Total)
	}
	fmt.Fprintln(w)
}
