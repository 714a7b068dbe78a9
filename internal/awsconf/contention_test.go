package awsconf_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cloudcommerce/cloudcommerce/internal/awsconf"
)

func TestContentionIsToldApartFromErrors(t *testing.T) {
	t.Parallel()
	canceled := func(codes ...string) error {
		var rs []types.CancellationReason
		for _, c := range codes {
			rs = append(rs, types.CancellationReason{Code: aws.String(c)})
		}
		return fmt.Errorf("write: %w", &types.TransactionCanceledException{CancellationReasons: rs})
	}
	cases := []struct {
		err     error
		outcome string
		lost    bool
	}{
		{&types.ConditionalCheckFailedException{}, "ConditionalCheckFailed", true},
		{&types.TransactionConflictException{}, "TransactionConflict", true},
		{canceled("None", "ConditionalCheckFailed"), "ConditionalCheckFailed", true},
		{canceled("TransactionConflict", "None"), "TransactionConflict", true},
		{canceled("ConditionalCheckFailed", "ThrottlingError"), "TransactionCanceledException", false},
		{canceled("None", "ValidationError"), "TransactionCanceledException", false},
		{&types.ProvisionedThroughputExceededException{}, "ProvisionedThroughputExceededException", false},
		{errors.New("connection reset"), "network", false},
	}
	for _, c := range cases {
		_, lost := awsconf.Contention(c.err)
		if got := awsconf.Outcome(c.err); got != c.outcome || lost != c.lost {
			t.Errorf("%v: outcome %q contention %v; want %q %v", c.err, got, lost, c.outcome, c.lost)
		}
	}
}
