package awsconf

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ItemSize is the size of a DynamoDB item as capacity units count it
// (the Amazon DynamoDB Developer Guide, "Item sizes and formats"): for
// each attribute the UTF-8 length of its name plus the size of its value.
func ItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

// valueSize is the size of one attribute value: a string's or binary's
// length; a number's one byte per two significant digits plus one; one
// byte for a Boolean or null; a list's or map's 3 bytes plus one per
// element plus the elements (a map's names included); a set's elements.
func valueSize(v types.AttributeValue) int {
	switch a := v.(type) {
	case *types.AttributeValueMemberS:
		return len(a.Value)
	case *types.AttributeValueMemberN:
		return numberSize(a.Value)
	case *types.AttributeValueMemberB:
		return len(a.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range a.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range a.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range a.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range a.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range a.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is one byte per two significant digits (leading and
// trailing zeros trimmed) plus one.
func numberSize(v string) int {
	v = strings.TrimLeft(v, "+-")
	mant, _, _ := strings.Cut(strings.ToLower(v), "e")
	digits := strings.Replace(mant, ".", "", 1)
	digits = strings.Trim(digits, "0")
	if digits == "" {
		return 2
	}
	return (len(digits)+1)/2 + 1
}
