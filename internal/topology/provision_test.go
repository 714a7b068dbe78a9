package topology_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
	"github.com/cloudcommerce/cloudcommerce/internal/config"
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
