package main

import (
	"os"

	"github.com/cloudcommerce/cloudcommerce/bench/cost"
	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// recordEnv makes a run's workers record every DynamoDB write request in
// path (awsconf.RecordCallsEnv with awsconf.RecordWritesEnv).
func recordEnv(path string) []string {
	return []string{awsconf.RecordCallsEnv + "=" + path, awsconf.RecordWritesEnv + "=1"}
}

// schemas are the orders, inventory and idempotency tables of the stack
// with prefix, as cost.RecordedWriteUnits charges them. The sandbox
// payment ledger stands in for the payment provider and is left out.
func schemas(prefix string) (map[string]cost.Schema, string, error) {
	topo, err := topology.Load()
	if err != nil {
		return nil, "", err
	}
	names := topo.Names(prefix)
	out := map[string]cost.Schema{}
	for _, tb := range topo.Tables {
		if tb.Role == "payments_ledger" {
			continue
		}
		s := cost.Schema{Label: tb.Role, Hash: tb.HashKey.Name}
		if tb.RangeKey != nil {
			s.Range = tb.RangeKey.Name
		}
		for _, ix := range tb.GlobalSecondaryIndexes {
			is := cost.IndexSchema{Name: ix.Name, Hash: ix.HashKey.Name, Projection: ix.ProjectionType()}
			if ix.RangeKey != nil {
				is.Range = ix.RangeKey.Name
			}
			s.Indexes = append(s.Indexes, is)
		}
		out[names.Tables[tb.Role]] = s
	}
	return out, names.Tables["orders"], nil
}

// recordedWriteUnits charges the writes recorded in path (from the first
// placement of the measured run on) to the orders they wrote.
func recordedWriteUnits(path, prefix string) (*cost.WriteUnits, error) {
	sch, orders, err := schemas(prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u, err := cost.RecordedWriteUnits(f, sch, orders, nil)
	if err != nil {
		return nil, err
	}
	return &u, nil
}
