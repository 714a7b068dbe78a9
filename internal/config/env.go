package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Each setting is declared once, as a struct field with tags read by
// github.com/caarlos0/env:
//
//	env:"NAME"          the environment variable
//	envDefault:"..."    its default (none: the zero value, or off)
//	doc:"..."           what it means (the configuration table, help)
//	range:"lo,hi"       integers: the accepted range
//	off:"true"          durations: "off" or "0" turn the feature off (-1)
//	zero:"ok"           durations: 0 is accepted
//
// Durations must otherwise be positive. A value that does not parse or is
// out of range is reported as NAME="value": want <what is accepted>,
// together with every other problem.

// Var is one environment variable a component reads: its name, its
// default as documented ("" for none) and what it means.
type Var struct{ Name, Default, Meaning string }

// field is one declared setting of a configuration struct.
type field struct {
	index       []int
	name, deflt string
	doc         string
	typ         reflect.Type
	lo, hi      int
	hasRange    bool
	off, zero   bool
}

// fields returns the declared settings of the struct type t, in order.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := f.Tag.Lookup("env")
		if !ok || name == "-" {
			continue
		}
		d := field{index: f.Index, name: name, deflt: f.Tag.Get("envDefault"), doc: f.Tag.Get("doc"), typ: f.Type,
			off: f.Tag.Get("off") == "true", zero: f.Tag.Get("zero") == "ok"}
		if r := f.Tag.Get("range"); r != "" {
			if _, err := fmt.Sscanf(r, "%d,%d", &d.lo, &d.hi); err != nil {
				panic(fmt.Sprintf("config: %s: bad range tag %q", name, r))
			}
			d.hasRange = true
		}
		out = append(out, d)
	}
	return out
}

// vars lists the declared variables of the struct type t for documentation.
func vars(t reflect.Type) []Var {
	var out []Var
	for _, f := range fields(t) {
		out = append(out, Var{Name: f.name, Default: f.deflt, Meaning: f.doc})
	}
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// want says what a variable accepts, for error messages.
func (f field) want() string {
	switch {
	case f.typ == durationType && f.zero:
		return "a duration such as 2s"
	case f.typ == durationType:
		return "a positive duration such as 30s"
	case f.hasRange:
		return fmt.Sprintf("an integer from %d to %d", f.lo, f.hi)
	case f.typ.Kind() == reflect.Bool || f.typ.Kind() == reflect.Pointer && f.typ.Elem().Kind() == reflect.Bool:
		return "true or false"
	}
	return "a valid value"
}

// load reads the variables declared by *dst through getenv: unset ones take
// their defaults; surrounding blanks are ignored except in strings. It
// returns which variables were set and every problem found.
func load(dst any, getenv func(string) string) (set map[string]bool, errs []error) {
	v := reflect.ValueOf(dst).Elem()
	fs := fields(v.Type())
	environ, raw, set := map[string]string{}, map[string]string{}, map[string]bool{}
	byField := map[string]field{}
	for _, f := range fs {
		byField[v.Type().FieldByIndex(f.index).Name] = f
		s := getenv(f.name)
		if f.typ.Kind() != reflect.String {
			s = strings.TrimSpace(s)
		}
		if s == "" {
			continue
		}
		raw[f.name], set[f.name] = s, true
		if f.off && (s == "off" || s == "0") {
			s = "-1ns"
		}
		environ[f.name] = s
	}
	failed := map[string]bool{}
	if err := env.ParseWithOptions(dst, env.Options{Environment: environ}); err != nil {
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			return set, []error{err}
		}
		for _, e := range agg.Errors {
			var pe env.ParseError
			if !errors.As(e, &pe) {
				errs = append(errs, e)
				continue
			}
			if f, ok := byField[pe.Name]; ok {
				errs = append(errs, fmt.Errorf("%s=%q: want %s", f.name, raw[f.name], f.want()))
				failed[f.name] = true
				continue
			}
			errs = append(errs, e)
		}
	}
	for _, f := range fs {
		if !set[f.name] || failed[f.name] {
			continue
		}
		fv := v.FieldByIndex(f.index)
		bad := false
		switch {
		case f.typ == durationType:
			d := time.Duration(fv.Int())
			bad = d < 0 && !(f.off && d == -1) || d == 0 && !f.zero
		case f.hasRange:
			bad = fv.Int() < int64(f.lo) || fv.Int() > int64(f.hi)
		}
		if bad {
			errs = append(errs, fmt.Errorf("%s=%q: want %s", f.name, raw[f.name], f.want()))
		}
	}
	return set, errs
}

// fill sets every zero field of *dst that has a default to the default.
func fill(dst any) {
	if err := env.ParseWithOptions(dst, env.Options{Environment: map[string]string{}, SetDefaultsForZeroValuesOnly: true}); err != nil {
		panic(fmt.Sprintf("config: a declared default does not parse: %v", err))
	}
}
