package awsconf

import (
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// RecordWritesEnv, when set (to anything) beside RecordCallsEnv, makes the
// recorder also write one line per DynamoDB write request with what
// capacity units are charged for (Write): the benchmark's cost model
// reads them (bench/cost). Package config reads it into
// Options.RecordWrites.
const RecordWritesEnv = "CLOUDCOMMERCE_TEST_RECORD_WRITES"

// Write is one item written by a DynamoDB request (a request of a
// transaction or batch writes several).
type Write struct {
	Table string `json:"table"`
	// Op is Put, Update, Delete or Check (a transaction's ConditionCheck).
	Op string `json:"op"`
	// Transact is set for an item of TransactWriteItems, which DynamoDB
	// charges twice.
	Transact bool `json:"transact,omitempty"`
	// Bytes is the item's size as capacity units count it (ItemSize): a
	// Put's item; for an Update or Delete, the key and the values the
	// request sets (the stored item may be larger: the cost model takes the
	// larger of that and what it last saw written).
	Bytes int `json:"bytes"`
	// Attrs are the item's top-level scalar attributes (key attributes
	// included) of at most maxRecordedValue bytes with their values, from
	// which index keys are read: a Put's all, an Update's key and the
	// attributes it SETs ("?" for a value computed from the item, as in
	// "available - :q", or ADDed), a Delete's key.
	Attrs map[string]string `json:"attrs,omitempty"`
	// Removes are the attributes an Update REMOVEs.
	Removes []string `json:"removes,omitempty"`
}

// maxRecordedValue bounds the values recorded in Write.Attrs: index keys
// are short; documents are not recorded.
const maxRecordedValue = 256

// writesOf returns the items a DynamoDB write request writes (PutItem,
// UpdateItem, TransactWriteItems: the writes the store makes), or nil for
// any other request.
func writesOf(params any) []Write {
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		return []Write{putWrite(deref(in.TableName), in.Item)}
	case *dynamodb.UpdateItemInput:
		return []Write{updateWrite(deref(in.TableName), in.Key, deref(in.UpdateExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues)}
	case *dynamodb.TransactWriteItemsInput:
		out := make([]Write, 0, len(in.TransactItems))
		for _, it := range in.TransactItems {
			var w Write
			switch {
			case it.Put != nil:
				w = putWrite(deref(it.Put.TableName), it.Put.Item)
			case it.Update != nil:
				u := it.Update
				w = updateWrite(deref(u.TableName), u.Key, deref(u.UpdateExpression), u.ExpressionAttributeNames, u.ExpressionAttributeValues)
			case it.Delete != nil:
				w = keyWrite(deref(it.Delete.TableName), "Delete", it.Delete.Key)
			case it.ConditionCheck != nil:
				w = keyWrite(deref(it.ConditionCheck.TableName), "Check", it.ConditionCheck.Key)
			default:
				continue
			}
			w.Transact = true
			out = append(out, w)
		}
		return out
	}
	return nil
}

func putWrite(table string, item map[string]types.AttributeValue) Write {
	return Write{Table: table, Op: "Put", Bytes: ItemSize(item), Attrs: scalars(item)}
}

func keyWrite(table, op string, key map[string]types.AttributeValue) Write {
	return Write{Table: table, Op: op, Bytes: ItemSize(key), Attrs: scalars(key)}
}

// scalars are the short string and number attributes of item.
func scalars(item map[string]types.AttributeValue) map[string]string {
	out := make(map[string]string, len(item))
	for k, v := range item {
		switch a := v.(type) {
		case *types.AttributeValueMemberS:
			if len(a.Value) <= maxRecordedValue {
				out[k] = a.Value
			}
		case *types.AttributeValueMemberN:
			out[k] = a.Value
		}
	}
	return out
}

// updateClause splits an update expression into its SET, REMOVE, ADD and
// DELETE clauses.
var updateClause = regexp.MustCompile(`(?i)\b(SET|REMOVE|ADD|DELETE)\s`)

// updateWrite records an UpdateItem's key and what its expression sets and
// removes.
func updateWrite(table string, key map[string]types.AttributeValue, expr string, names map[string]string, vals map[string]types.AttributeValue) Write {
	w := keyWrite(table, "Update", key)
	name := func(n string) string {
		n = strings.TrimSpace(n)
		if v, ok := names[n]; ok {
			return v
		}
		return n
	}
	locs := updateClause.FindAllStringSubmatchIndex(expr, -1)
	for i, loc := range locs {
		end := len(expr)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		body := expr[loc[1]:end]
		for _, part := range splitTop(body) {
			switch strings.ToUpper(expr[loc[2]:loc[3]]) {
			case "SET":
				lhs, rhs, ok := strings.Cut(part, "=")
				if !ok {
					continue
				}
				attr, rhs := name(lhs), strings.TrimSpace(rhs)
				w.Attrs[attr] = "?"
				if v, ok := vals[rhs]; ok {
					w.Bytes += len(attr) + valueSize(v)
					if s := scalars(map[string]types.AttributeValue{attr: v}); s[attr] != "" {
						w.Attrs[attr] = s[attr]
					}
				} else {
					w.Bytes += len(attr) + 8
				}
			case "REMOVE":
				w.Removes = append(w.Removes, name(part))
			default: // ADD, DELETE: the new value depends on the stored one
				f := strings.Fields(part)
				if len(f) > 0 {
					w.Attrs[name(f[0])] = "?"
					w.Bytes += len(name(f[0])) + 8
				}
			}
		}
	}
	return w
}

// splitTop splits a clause's comma-separated actions, ignoring commas
// inside parentheses (function arguments).
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}
