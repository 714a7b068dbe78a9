package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type sample struct {
	D     time.Duration `env:"D" envDefault:"30s"`
	Off   time.Duration `env:"OFF" envDefault:"5s" off:"true"`
	Zero  time.Duration `env:"ZERO" envDefault:"1s" zero:"ok"`
	N     int           `env:"N" envDefault:"3" range:"1,10"`
	B     *bool         `env:"B" envDefault:"true"`
	S     string        `env:"S" envDefault:"x" doc:"a string"`
	Other string
}

// One struct field declares a variable: load reads it, applies its
// default, checks it by its tags and names every bad one at once.
func TestLoadReadsDeclaredVariablesAndReportsEveryProblem(t *testing.T) {
	t.Parallel()
	var s sample
	env := map[string]string{"OFF": "off", "ZERO": "0", "N": " 7 ", "B": "false", "S": " y "}
	set, errs := load(&s, func(k string) string { return env[k] })
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.D != 30*time.Second || s.Off != -1 || s.Zero != 0 || s.N != 7 || s.B == nil || *s.B || s.S != " y " {
		t.Fatalf("loaded %+v", s)
	}
	if set["D"] || !set["N"] {
		t.Errorf("set = %v: D is unset, N set", set)
	}

	bad := map[string]string{"D": "soon", "OFF": "-2s", "ZERO": "-1s", "N": "70", "B": "maybe"}
	_, errs = load(&sample{}, func(k string) string { return bad[k] })
	want := []string{
		`D="soon": want a positive duration such as 30s`,
		`OFF="-2s": want a positive duration such as 30s`,
		`ZERO="-1s": want a duration such as 2s`,
		`N="70": want an integer from 1 to 10`,
		`B="maybe": want true or false`,
	}
	got := ""
	for _, e := range errs {
		got += e.Error() + "\n"
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("problems\n%s\nlack %q", got, w)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(errs), len(want), got)
	}
}

func TestFillSetsOnlyZeroFields(t *testing.T) {
	t.Parallel()
	s := sample{N: 2}
	fill(&s)
	if s.N != 2 || s.D != 30*time.Second || s.S != "x" || s.B == nil || !*s.B {
		t.Fatalf("filled %+v", s)
	}
}

func TestVarsListTheDeclarations(t *testing.T) {
	t.Parallel()
	v := vars(reflect.TypeOf(sample{}))
	if len(v) != 6 || v[5] != (Var{Name: "S", Default: "x", Meaning: "a string"}) {
		t.Fatalf("vars = %+v", v)
	}
}

func TestValidPrefix(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{"cloudcommerce": true, "shop_1-a": true, "": false, "bad prefix!": false, strings.Repeat("a", 41): false} {
		if ValidPrefix(p) != want {
			t.Errorf("ValidPrefix(%q) != %v", p, want)
		}
	}
}
