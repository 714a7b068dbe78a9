package terraform_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// ---------------------------------------------------------------------------
// A small evaluator
// ---------------------------------------------------------------------------

type evaluator struct {
	t      *testing.T
	m      *module
	vars   map[string]cty.Value
	locals map[string]cty.Value
	funcs  map[string]function.Function
	// resources are the values of resources, data sources and module calls
	// by root name ("aws_sqs_queue", "data", "module"), where a test gives
	// them (symbolic ARNs); any other is unknown.
	resources map[string]cty.Value
}

func functions() map[string]function.Function {
	file := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := os.ReadFile(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(string(b)), nil
		},
	})
	// Terraform's alltrue: true when every element of a list of bools is.
	alltrue := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); !v.True() {
					return cty.False, nil
				}
			}
			return cty.True, nil
		},
	})
	// Terraform's templatefile: the file as an HCL template over vars;
	// unknown while any var is.
	templatefile := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "vars", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if !args[1].IsWhollyKnown() {
				return cty.UnknownVal(cty.String), nil
			}
			src, err := os.ReadFile(args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			tmpl, diags := hclsyntax.ParseTemplate(src, args[0].AsString(), hcl.InitialPos)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			v, diags := tmpl.Value(&hcl.EvalContext{Variables: args[1].AsValueMap()})
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return v, nil
		},
	})
	// Terraform's fileset: the file names under a directory matching a glob.
	fileset := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}, {Name: "pattern", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Set(cty.String)),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			names, err := filepath.Glob(filepath.Join(args[0].AsString(), args[1].AsString()))
			if err != nil {
				return cty.NilVal, err
			}
			if len(names) == 0 {
				return cty.SetValEmpty(cty.String), nil
			}
			var out []cty.Value
			for _, n := range names {
				out = append(out, cty.StringVal(filepath.Base(n)))
			}
			return cty.SetVal(out), nil
		},
	})
	return map[string]function.Function{
		"file":         file,
		"templatefile": templatefile,
		"fileset":      fileset,
		"trimsuffix":   stdlib.TrimSuffixFunc,
		"endswith": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "suffix", Type: cty.String}},
			Type:   function.StaticReturnType(cty.Bool),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				return cty.BoolVal(strings.HasSuffix(args[0].AsString(), args[1].AsString())), nil
			},
		}),
		"alltrue":    alltrue,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"values":     stdlib.ValuesFunc,
		"join":       stdlib.JoinFunc,
		"distinct":   stdlib.DistinctFunc,
		"concat":     stdlib.ConcatFunc,
		"flatten":    stdlib.FlattenFunc,
		"merge":      stdlib.MergeFunc,
		"length":     stdlib.LengthFunc,
		"contains":   stdlib.ContainsFunc,
		"sort":       stdlib.SortFunc,
		"lookup":     stdlib.LookupFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"format":     stdlib.FormatFunc,
		"split":      stdlib.SplitFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"try":        tryfunc.TryFunc,
		"can":        tryfunc.CanFunc,
		"min":        stdlib.MinFunc,
		"max":        stdlib.MaxFunc,
	}
}

// newEvaluator evaluates a module's variables (defaults, with optional()
// attribute defaults applied, overridden by `set`) and then its locals.
func newEvaluator(t *testing.T, m *module, set map[string]cty.Value) *evaluator {
	t.Helper()
	e := &evaluator{t: t, m: m, vars: map[string]cty.Value{}, locals: map[string]cty.Value{}, funcs: functions()}
	for _, b := range m.blocksOf("variable") {
		name := b.Labels[0]
		val := cty.DynamicVal
		if v, ok := set[name]; ok {
			val = v
		} else if d, ok := b.Body.Attributes["default"]; ok {
			v, diags := d.Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("variable %q default: %s", name, diags.Error())
			}
			val = v
		}
		if ta, ok := b.Body.Attributes["type"]; ok && val.IsWhollyKnown() {
			ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(ta.Expr)
			if diags.HasErrors() {
				t.Fatalf("variable %q type: %s", name, diags.Error())
			}
			if defaults != nil && !val.IsNull() {
				val = defaults.Apply(val)
			}
			conv, err := convert.Convert(val, ty)
			if err != nil {
				t.Fatalf("variable %q: value %#v does not convert to its type: %v", name, val, err)
			}
			val = conv
		}
		e.vars[name] = val
	}
	e.settleLocals()
	return e
}

// settleLocals evaluates the module's locals over its variables and the
// resources given.
func (e *evaluator) settleLocals() {
	locals := e.m.locals()
	e.locals = map[string]cty.Value{}
	for name := range locals {
		e.locals[name] = cty.DynamicVal
	}
	// Locals form a DAG; len(locals) rounds settle every chain.
	for range len(locals) + 1 {
		for name, a := range locals {
			v, diags := e.eval(a.Expr, nil)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			e.locals[name] = v
		}
	}
}

// withResources returns a copy of e in which the resources, data sources
// and module calls named by root name have the values given (symbolic
// ARNs), its locals evaluated again over them: a local that picks the
// resource in use (try(aws_x.this[0].arn, data.aws_x.existing[0].arn))
// becomes known.
func (e *evaluator) withResources(res map[string]cty.Value) *evaluator {
	c := *e
	c.resources = res
	c.settleLocals()
	return &c
}

// instances is the value of a counted resource or data block whose
// instances are all `one`: a tuple of as many as its count evaluates to.
func (e *evaluator) instances(b *hclsyntax.Block, one cty.Value) cty.Value {
	e.t.Helper()
	n := num(e.t, e.must(attr(e.t, b, "count").Expr, nil))
	if n == 0 {
		return cty.EmptyTupleVal
	}
	vals := make([]cty.Value, n)
	for i := range vals {
		vals[i] = one
	}
	return cty.TupleVal(vals)
}

func (e *evaluator) eval(expr hcl.Expression, extra map[string]cty.Value) (cty.Value, hcl.Diagnostics) {
	vars := map[string]cty.Value{
		"var":   cty.ObjectVal(e.vars),
		"local": cty.ObjectVal(e.locals),
		"path":  cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(e.m.dir)}),
	}
	if len(e.vars) == 0 {
		vars["var"] = cty.EmptyObjectVal
	}
	if len(e.locals) == 0 {
		vars["local"] = cty.EmptyObjectVal
	}
	for k, v := range extra {
		vars[k] = v
	}
	// Resources, data sources and module calls are unknown here, unless
	// given.
	for _, tr := range expr.Variables() {
		if _, ok := vars[tr.RootName()]; !ok {
			if v, ok := e.resources[tr.RootName()]; ok {
				vars[tr.RootName()] = v
			} else {
				vars[tr.RootName()] = cty.DynamicVal
			}
		}
	}
	return expr.Value(&hcl.EvalContext{Variables: vars, Functions: e.funcs})
}

// must evaluates an expression that has to be wholly known.
func (e *evaluator) must(expr hcl.Expression, extra map[string]cty.Value) cty.Value {
	e.t.Helper()
	v, diags := e.eval(expr, extra)
	if diags.HasErrors() {
		e.t.Fatalf("%s: evaluate: %s", expr.Range(), diags.Error())
	}
	if !v.IsWhollyKnown() {
		e.t.Fatalf("%s: does not evaluate to a known value offline (got %#v)", expr.Range(), v)
	}
	return v
}

func each(k string, v cty.Value) map[string]cty.Value {
	return map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(k), "value": v})}
}

func iter(name string, k, v cty.Value) map[string]cty.Value {
	return map[string]cty.Value{name: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
}

func with(maps ...map[string]cty.Value) map[string]cty.Value {
	out := map[string]cty.Value{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// forEach evaluates a block's for_each to its instances (key -> each.value).
func (e *evaluator) forEach(b *hclsyntax.Block) map[string]cty.Value {
	e.t.Helper()
	v := e.must(attr(e.t, b, "for_each").Expr, nil)
	out := map[string]cty.Value{}
	if v.Type().IsSetType() {
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out[ev.AsString()] = ev
		}
		return out
	}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		out[k.AsString()] = ev
	}
	return out
}

func str(t *testing.T, v cty.Value) string {
	t.Helper()
	if v.IsNull() || v.Type() != cty.String {
		t.Fatalf("want a string, got %#v", v)
	}
	return v.AsString()
}

func num(t *testing.T, v cty.Value) int {
	t.Helper()
	if v.IsNull() || v.Type() != cty.Number {
		t.Fatalf("want a number, got %#v", v)
	}
	i, _ := v.AsBigFloat().Int64()
	return int(i)
}

func boolean(t *testing.T, v cty.Value) bool {
	t.Helper()
	if v.IsNull() || v.Type() != cty.Bool {
		t.Fatalf("want a bool, got %#v", v)
	}
	return v.True()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requiredRootVars are the root variables without a default.
var requiredRootVars = map[string]cty.Value{
	"region":             cty.StringVal("eu-west-1"),
	"vpc_id":             cty.StringVal("vpc-0123456789abcdef0"),
	"private_subnet_ids": cty.ListVal([]cty.Value{cty.StringVal("subnet-0123456789abcdef0")}),
	"image_tag":          cty.StringVal("v1.0.0"),
}

func rootEvaluator(t *testing.T, c *config, set map[string]cty.Value) *evaluator {
	return newEvaluator(t, c.root, with(requiredRootVars, set))
}

// moduleEvaluator evaluates a child module with the arguments the root passes
// in its `module "<call>"` block (unknown where they come from resources).
func moduleEvaluator(t *testing.T, c *config, root *evaluator, call, dir string) *evaluator {
	t.Helper()
	return moduleInstanceEvaluator(t, c, root, call, dir, nil)
}

// moduleInstanceEvaluator is moduleEvaluator for one instance of a
// for_each'd module call: extra holds its `each`.
func moduleInstanceEvaluator(t *testing.T, c *config, root *evaluator, call, dir string, extra map[string]cty.Value) *evaluator {
	t.Helper()
	b := c.root.block(t, "module", call)
	if src := str(t, root.must(attr(t, b, "source").Expr, nil)); src != "./modules/"+dir {
		t.Fatalf("module %q: source %q, want ./modules/%s", call, src, dir)
	}
	set := map[string]cty.Value{}
	for name, a := range b.Body.Attributes {
		if name == "source" || name == "for_each" || name == "count" || name == "depends_on" {
			continue
		}
		v, diags := root.eval(a.Expr, extra)
		if diags.HasErrors() {
			t.Fatalf("module %q argument %s: %s", call, name, diags.Error())
		}
		set[name] = v
	}
	return newEvaluator(t, c.mod(t, dir), set)
}
