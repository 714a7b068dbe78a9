package store

import (
	"regexp"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
)

var (
	namePlaceholder  = regexp.MustCompile(`#[A-Za-z0-9_]+`)
	valuePlaceholder = regexp.MustCompile(`:[A-Za-z0-9_]+`)
)

// checkPlaceholders fails unless every #name and :value the expressions use
// is defined and every definition is used: an emulator answers a mistake
// here with a failed condition or a silent success, AWS with a
// ValidationException.
func checkPlaceholders(t *testing.T, names map[string]string, values map[string]types.AttributeValue, exprs ...string) {
	t.Helper()
	usedN, usedV := map[string]bool{}, map[string]bool{}
	for _, e := range exprs {
		for _, m := range namePlaceholder.FindAllString(e, -1) {
			usedN[m] = true
			if _, ok := names[m]; !ok {
				t.Errorf("%q uses %s, which is not defined", e, m)
			}
		}
		for _, m := range valuePlaceholder.FindAllString(e, -1) {
			usedV[m] = true
			if _, ok := values[m]; !ok {
				t.Errorf("%q uses %s, which is not defined", e, m)
			}
		}
	}
	for k := range names {
		if !usedN[k] {
			t.Errorf("name %s is defined but unused", k)
		}
	}
	for k := range values {
		if !usedV[k] {
			t.Errorf("value %s is defined but unused", k)
		}
	}
}

func num(t *testing.T, v types.AttributeValue) string {
	t.Helper()
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("%#v is not a number", v)
	}
	return n.Value
}

func strOf(t *testing.T, v types.AttributeValue) string {
	t.Helper()
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("%#v is not a string", v)
	}
	return s.Value
}

func TestReserveExpressionChecksLevelAndPrice(t *testing.T) {
	t.Parallel()
	st := &Store{tables: Tables{Inventory: "inv"}}
	u := st.reserveUpdate(pipeline.Line{SKU: "A", Quantity: 3, UnitPrice: pipeline.Money{Amount: 1250, Currency: "USD"}})
	checkPlaceholders(t, u.ExpressionAttributeNames, u.ExpressionAttributeValues, aws.ToString(u.UpdateExpression), aws.ToString(u.ConditionExpression))
	if u.ExpressionAttributeNames["#price"] != priceAttr {
		t.Errorf("#price = %q, want %q", u.ExpressionAttributeNames["#price"], priceAttr)
	}
	if got := num(t, u.ExpressionAttributeValues[":q"]); got != "3" {
		t.Errorf(":q = %s, want 3", got)
	}
	if got := strOf(t, u.ExpressionAttributeValues[":price"]); got != "1250 USD" {
		t.Errorf(":price = %q, want \"1250 USD\"", got)
	}
	if got, err := parsePrice(strOf(t, u.ExpressionAttributeValues[":price"])); err != nil || got != (pipeline.Money{Amount: 1250, Currency: "USD"}) {
		t.Errorf("the price the condition compares does not read back: %v, %v", got, err)
	}
	if u.ReturnValuesOnConditionCheckFailure != types.ReturnValuesOnConditionCheckFailureAllOld {
		t.Errorf("a failed reservation does not return the item it found")
	}
}

func TestAdjustExpressionKeepsTheLevelInRange(t *testing.T) {
	t.Parallel()
	st := &Store{tables: Tables{Inventory: "inv"}}
	for _, tc := range []struct {
		delta     int64
		d, lo, hi string
	}{
		{delta: 5, d: "5", lo: "-5", hi: "999999995"},
		{delta: -7, d: "-7", lo: "7", hi: "1000000007"},
	} {
		in := st.adjustUpdate("A", tc.delta)
		checkPlaceholders(t, in.ExpressionAttributeNames, in.ExpressionAttributeValues, aws.ToString(in.UpdateExpression), aws.ToString(in.ConditionExpression))
		got := []string{num(t, in.ExpressionAttributeValues[":d"]), num(t, in.ExpressionAttributeValues[":lo"]), num(t, in.ExpressionAttributeValues[":hi"])}
		if want := []string{tc.d, tc.lo, tc.hi}; !slices.Equal(got, want) {
			t.Errorf("delta %d: :d, :lo, :hi = %v, want %v", tc.delta, got, want)
		}
		if in.ReturnValues != types.ReturnValueUpdatedNew {
			t.Errorf("the adjustment does not return the new level")
		}
	}
}
