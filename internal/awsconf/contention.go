package awsconf

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Contention reports whether err is a DynamoDB write that lost to another
// writer, and the reason: "ConditionalCheckFailed" (a condition, such as
// the order's expected status or a stock level, did not hold) or
// "TransactionConflict" (another transaction held an item). Both are the
// expected outcome of contention (duplicate deliveries, a flash sale on
// one SKU) and the pipeline resolves them; they are not errors. A
// cancelled transaction is contention when every reason it gives is one
// of those (or None); one cancelled for throttling or validation is not.
func Contention(err error) (string, bool) {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return "ConditionalCheckFailed", true
	}
	var tc *types.TransactionConflictException
	if errors.As(err, &tc) {
		return "TransactionConflict", true
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return "", false
	}
	reason := ""
	for _, r := range tce.CancellationReasons {
		switch code := aws.ToString(r.Code); code {
		case "", "None":
		case "ConditionalCheckFailed", "TransactionConflict":
			if reason == "" {
				reason = code
			}
		default:
			return "", false
		}
	}
	return reason, reason != ""
}
