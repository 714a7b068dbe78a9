package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// reader reads variables through getenv and remembers every problem, so a
// misconfigured deployment is told everything wrong at once, by variable
// name.
type reader struct {
	getenv func(string) string
	errs   []error
}

// newReader returns a reader over getenv (os.Getenv, or a map in tests).
func newReader(getenv func(string) string) *reader { return &reader{getenv: getenv} }

// String returns the variable's value, unchanged.
func (r *reader) String(name string) string { return r.getenv(name) }

func (r *reader) value(name string) string { return strings.TrimSpace(r.getenv(name)) }

func (r *reader) fail(name, v, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: want %s", name, v, want))
}

// Duration sets *d from a positive Go duration; unset leaves *d as it is.
// With allowOff, "off" or "0" sets *d to -1 (the feature is disabled).
func (r *reader) Duration(name string, d *time.Duration, allowOff bool) {
	v := r.value(name)
	switch {
	case v == "":
		return
	case allowOff && (v == "off" || v == "0"):
		*d = -1
		return
	}
	p, err := time.ParseDuration(v)
	if err != nil || p <= 0 {
		r.fail(name, v, "a positive duration such as 30s")
		return
	}
	*d = p
}

// NonNegativeDuration sets *d from a duration that may be zero.
func (r *reader) NonNegativeDuration(name string, d *time.Duration) {
	v := r.value(name)
	if v == "" {
		return
	}
	p, err := time.ParseDuration(v)
	if err != nil || p < 0 {
		r.fail(name, v, "a duration such as 2s")
		return
	}
	*d = p
}

// Int sets *n from an integer in [lo, hi]; unset leaves *n as it is.
func (r *reader) Int(name string, n *int, lo, hi int) {
	v := r.value(name)
	if v == "" {
		return
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < lo || p > hi {
		r.fail(name, v, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return
	}
	*n = p
}

// Bool sets *b from true/false; unset leaves *b as it is.
func (r *reader) Bool(name string, b **bool) {
	v := r.value(name)
	if v == "" {
		return
	}
	p, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, v, "true or false")
		return
	}
	*b = &p
}

// Err returns every problem found so far, joined, or nil.
func (r *reader) Err() error { return errors.Join(r.errs...) }

// ValidPrefix reports whether p is usable as the prefix of AWS resource
// names: 1-40 letters, digits, - or _.
func ValidPrefix(p string) bool {
	if p == "" || len(p) > 40 {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
