package topology_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/awsfault"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/emulator"
	"github.com/cloudcommerce/cloudcommerce/internal/dev/testkit"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

func TestMain(m *testing.M) { emulator.RunTests(m) }

func clients(t *testing.T) topology.Clients {
	t.Helper()
	cfg, err := awsconf.Load(context.Background(), config.AWS(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	return topology.Clients{SQS: sqs.NewFromConfig(cfg), DynamoDB: awsconf.DynamoDB(cfg), EventBridge: eventbridge.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg)}
}

func indexes(t *testing.T, db *dynamodb.Client, table string) map[string]*ddbtypes.GlobalSecondaryIndexDescription {
	t.Helper()
	out, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*ddbtypes.GlobalSecondaryIndexDescription{}
	for i, g := range out.Table.GlobalSecondaryIndexes {
		got[aws.ToString(g.IndexName)] = &out.Table.GlobalSecondaryIndexes[i]
	}
	return got
}

// The orders table gets both indexes, each with the topology's projection.
func TestOrdersTableHasItsIndexes(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := clients(t)
	p, err := topo.Provision(context.Background(), c, testkit.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	got := indexes(t, c.DynamoDB, p.Names.Tables["orders"])
	for name, want := range map[string]ddbtypes.ProjectionType{"by_status": ddbtypes.ProjectionTypeAll, "by_customer": ddbtypes.ProjectionTypeKeysOnly} {
		g, ok := got[name]
		if !ok {
			t.Errorf("orders table has no index %s (has %v)", name, got)
			continue
		}
		if g.Projection != nil && g.Projection.ProjectionType != want {
			t.Errorf("index %s projects %s, want %s", name, g.Projection.ProjectionType, want)
		}
	}
}

// An orders table made before the topology had by_customer (devstack's
// kept state) gets the index, or provisioning says which index is missing
// and what to do, instead of the first listing failing.
func TestProvisionAddsAnIndexTheTableLacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := clients(t)
	prefix := testkit.Prefix()
	table := prefix + "-orders"
	_, err = c.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &table, BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("order_id"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("status"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("updated_at"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("order_id"), KeyType: ddbtypes.KeyTypeHash}},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{IndexName: aws.String("by_status"),
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String("status"), KeyType: ddbtypes.KeyTypeHash},
				{AttributeName: aws.String("updated_at"), KeyType: ddbtypes.KeyTypeRange},
			}, Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = topo.Provision(ctx, c, prefix)
	_, added := indexes(t, c.DynamoDB, table)["by_customer"]
	switch {
	case err == nil && !added:
		t.Fatal("provisioning succeeded and the table still has no by_customer index")
	case err != nil && (added || !strings.Contains(err.Error(), "by_customer") || !strings.Contains(err.Error(), "data-dir")):
		t.Fatalf("provisioning failed with %v; want it to name by_customer and say how to recreate the table", err)
	}
}

// indexBuilds plays, through the fault endpoint, what DynamoDB does with an
// index added to an existing table and the emulator does not: UpdateTable
// starts building the index, DescribeTable shows it CREATING (the table
// UPDATING at first) for the next polls and ACTIVE after, and a second
// index created while one is CREATING is refused with
// LimitExceededException.
type indexBuilds struct {
	mu       sync.Mutex
	polls    int // describes an index stays CREATING for
	order    []string
	building map[string]*build
	refused  int
	// refuse is how many more creations to refuse whatever the state (a
	// change someone else began after provisioning looked).
	refuse int
}

type build struct {
	desc  map[string]any
	polls int
	seen  int
}

func (b *indexBuilds) creating() bool {
	for _, x := range b.building {
		if x.polls > 0 {
			return true
		}
	}
	return false
}

func (b *indexBuilds) updateTable(req []byte) *awsfault.Response {
	var in struct {
		GlobalSecondaryIndexUpdates []struct {
			Create *struct {
				IndexName  string
				KeySchema  any
				Projection any
			}
		}
	}
	if err := json.Unmarshal(req, &in); err != nil {
		r := awsfault.DynamoDBValidation
		return &r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.creating() || b.refuse > 0 {
		b.refuse--
		b.refused++
		r := awsfault.DynamoDBIndexLimitExceeded
		return &r
	}
	for _, u := range in.GlobalSecondaryIndexUpdates {
		if c := u.Create; c != nil {
			b.order = append(b.order, c.IndexName)
			b.building[c.IndexName] = &build{polls: b.polls, desc: map[string]any{"IndexName": c.IndexName, "KeySchema": c.KeySchema, "Projection": c.Projection}}
		}
	}
	return nil // the emulator accepts the update (and makes no index)
}

func (b *indexBuilds) describeTable(_, resp []byte) []byte {
	var out map[string]map[string]any
	if err := json.Unmarshal(resp, &out); err != nil || out["Table"] == nil {
		return resp
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tb := out["Table"]
	gsis, _ := tb["GlobalSecondaryIndexes"].([]any)
	for _, name := range b.order {
		x := b.building[name]
		d := map[string]any{}
		for k, v := range x.desc {
			d[k] = v
		}
		d["IndexStatus"], d["Backfilling"] = "ACTIVE", false
		if x.polls > 0 {
			d["IndexStatus"], d["Backfilling"] = "CREATING", true
			if x.seen == 0 {
				tb["TableStatus"] = "UPDATING"
			}
			x.polls--
			x.seen++
		}
		gsis = append(gsis, d)
	}
	tb["GlobalSecondaryIndexes"] = gsis
	body, _ := json.Marshal(out)
	return body
}

// oldOrdersTable creates an orders table as it was before by_customer and
// the indexes after it: keyed on order_id with by_status only.
func oldOrdersTable(t *testing.T, db *dynamodb.Client, table string) {
	t.Helper()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: &table, BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("order_id"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("status"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("updated_at"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("order_id"), KeyType: ddbtypes.KeyTypeHash}},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{IndexName: aws.String("by_status"),
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String("status"), KeyType: ddbtypes.KeyTypeHash},
				{AttributeName: aws.String("updated_at"), KeyType: ddbtypes.KeyTypeRange},
			}, Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll}}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// addedIndexes is what provisioning adds to oldOrdersTable: the orders
// table's indexes in topology.json other than by_status, in their order.
func addedIndexes(t *testing.T, topo *topology.Topology) []string {
	t.Helper()
	var out []string
	for _, tb := range topo.Tables {
		if tb.Role != "orders" {
			continue
		}
		for _, ix := range tb.GlobalSecondaryIndexes {
			if ix.Name != "by_status" {
				out = append(out, ix.Name)
			}
		}
	}
	if len(out) < 2 {
		t.Fatalf("topology.json's orders table adds %v to by_status; the tests want two or more", out)
	}
	return out
}

// building starts a fault endpoint in front of the emulator that builds
// indexes of table as DynamoDB does, each CREATING for polls describes,
// and clients through it.
func building(t *testing.T, table string, polls int) (*indexBuilds, topology.Clients) {
	t.Helper()
	proxy, err := awsfault.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	b := &indexBuilds{polls: polls, building: map[string]*build{}}
	match := `"TableName":"` + table + `"`
	proxy.Add(&awsfault.Rule{Service: "DynamoDB", Operation: "UpdateTable", Match: match, Respond: b.updateTable})
	proxy.Add(&awsfault.Rule{Service: "DynamoDB", Operation: "DescribeTable", Match: match, Rewrite: b.describeTable})
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: proxy.URL, Region: "us-east-1", StaticCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	return b, topology.Clients{SQS: sqs.NewFromConfig(cfg), DynamoDB: awsconf.DynamoDB(cfg), EventBridge: eventbridge.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg)}
}

// Provisioning an existing table adds its missing indexes one at a time,
// each only once DynamoDB shows the previous one ACTIVE, so DynamoDB never
// refuses one, and says what it is waiting for.
func TestProvisionAddsIndexesOneAtATimeAsDynamoDBAllows(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testkit.Prefix()
	table := prefix + "-orders"
	oldOrdersTable(t, clients(t).DynamoDB, table)
	b, c := building(t, table, 3)
	var progress strings.Builder
	c.Progress, c.IndexPoll = &progress, time.Millisecond
	p, err := topo.Provision(context.Background(), c, prefix)
	if err != nil {
		t.Fatalf("provision: %v\nprogress:\n%s", err, progress.String())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refused != 0 {
		t.Errorf("DynamoDB refused %d index creations made while another index was CREATING", b.refused)
	}
	if want := addedIndexes(t, topo); strings.Join(b.order, " ") != strings.Join(want, " ") {
		t.Errorf("indexes created %v, want %v", b.order, want)
	}
	for _, ix := range b.order {
		if x := b.building[ix]; x.seen != 3 {
			t.Errorf("index %s was described CREATING %d times before the next step, want all 3", ix, x.seen)
		}
		if !slices.Contains(p.Created, "index "+table+"/"+ix) {
			t.Errorf("Created %v lacks index %s", p.Created, ix)
		}
	}
	out := progress.String()
	for _, want := range []string{
		"table " + table + ": adding index by_open\n",
		"table " + table + ": waiting for index by_open: table UPDATING, index by_open CREATING (backfilling)",
		"table " + table + ": waiting for index by_open: table ACTIVE, index by_open CREATING (backfilling)",
		"table " + table + ": index by_open ready after",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
}

// A table whose index DynamoDB is still building when provisioning starts
// (an earlier run stopped waiting, or another tool) is waited for before
// the next index is created, through a refusal if need be.
func TestProvisionWaitsForAnIndexBuildingAlready(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testkit.Prefix()
	table := prefix + "-orders"
	oldOrdersTable(t, clients(t).DynamoDB, table)
	b, c := building(t, table, 2)
	// Someone else's index, still CREATING for the next 2 describes.
	b.order = []string{"by_other"}
	b.building["by_other"] = &build{polls: 2, desc: map[string]any{"IndexName": "by_other",
		"KeySchema": []map[string]string{{"AttributeName": "other", "KeyType": "HASH"}}, "Projection": map[string]string{"ProjectionType": "KEYS_ONLY"}}}
	var progress strings.Builder
	c.Progress, c.IndexPoll = &progress, time.Millisecond
	if _, err := topo.Provision(context.Background(), c, prefix); err != nil {
		t.Fatalf("provision: %v\nprogress:\n%s", err, progress.String())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refused != 0 || b.building["by_other"].seen != 2 {
		t.Errorf("refused %d, by_other described CREATING %d times: provisioning did not wait for the index being built", b.refused, b.building["by_other"].seen)
	}
	if want := "by_other " + strings.Join(addedIndexes(t, topo), " "); strings.Join(b.order, " ") != want {
		t.Errorf("indexes %v, want %s", b.order, want)
	}
}

// The wait is bounded by the context: an index that stays CREATING ends
// provisioning with an error naming it and what to do, not a hang.
func TestProvisionGivesUpWaitingWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testkit.Prefix()
	table := prefix + "-orders"
	oldOrdersTable(t, clients(t).DynamoDB, table)
	b, c := building(t, table, 1<<30)
	c.IndexPoll = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	c.Progress = &cancelAfter{n: 5, cancel: cancel}
	_, err = topo.Provision(ctx, c, prefix)
	if err == nil {
		t.Fatal("provisioning succeeded while the index was never ACTIVE")
	}
	for _, want := range []string{"index by_customer not ready", "index by_customer CREATING", "provision again later", "context canceled"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) != 1 {
		t.Errorf("created %v after the first index never became ACTIVE", b.order)
	}
}

// cancelAfter cancels a context on the n-th progress line.
type cancelAfter struct {
	n, lines int
	cancel   context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.lines++; c.lines >= c.n {
		c.cancel()
	}
	return len(p), nil
}

// A creation DynamoDB refuses although the table looked idle (a change
// begun in between) is tried again after a pause, not given up.
func TestProvisionRetriesAnIndexDynamoDBRefused(t *testing.T) {
	t.Parallel()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testkit.Prefix()
	table := prefix + "-orders"
	oldOrdersTable(t, clients(t).DynamoDB, table)
	b, c := building(t, table, 1)
	// The SDK retries the refusal itself (LimitExceededException is a
	// throttle to it), three attempts in all; the fourth refusal is
	// provisioning's.
	b.refuse = 4
	var progress strings.Builder
	c.Progress, c.IndexPoll = &progress, time.Millisecond
	if _, err := topo.Provision(context.Background(), c, prefix); err != nil {
		t.Fatalf("provision: %v\nprogress:\n%s", err, progress.String())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refused != 4 || strings.Join(b.order, " ") != strings.Join(addedIndexes(t, topo), " ") {
		t.Errorf("refused %d, created %v; want 4 refusals, then every index", b.refused, b.order)
	}
	if want := "DynamoDB refused index by_customer for now (Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table); waiting"; !strings.Contains(progress.String(), want) {
		t.Errorf("progress lacks %q:\n%s", want, progress.String())
	}
}
