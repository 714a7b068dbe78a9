package pipeline

import "regexp"

// idPattern is the one form of order and customer ids: a letter or digit,
// then up to 127 letters, digits, '.', '_', ':' or '-'. Everything that
// takes an id from outside (the intake API, the operator tools, listing
// cursors) checks it with ValidID, so an id the pipeline would refuse is
// never sent to AWS.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ValidID reports whether id has the form of an order or customer id.
func ValidID(id string) bool { return idPattern.MatchString(id) }
