package config

import (
	"strings"
	"testing"
	"time"
)

func TestReaderCollectsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"D": "5s", "OFF": "off", "N": "7", "B": "false", "BAD_D": "soon", "BAD_N": "70", "BAD_B": "maybe"}
	r := newReader(func(k string) string { return env[k] })
	var d, off, bad time.Duration
	var n, badN int
	var b, badB *bool
	r.Duration("D", &d, false)
	r.Duration("OFF", &off, true)
	r.Duration("BAD_D", &bad, false)
	r.Int("N", &n, 1, 10)
	r.Int("BAD_N", &badN, 1, 10)
	r.Bool("B", &b)
	r.Bool("BAD_B", &badB)
	r.Int("UNSET", &n, 1, 10)
	if d != 5*time.Second || off != -1 || n != 7 || b == nil || *b || bad != 0 || badN != 0 || badB != nil {
		t.Fatalf("d=%v off=%v n=%d b=%v bad=%v badN=%d badB=%v", d, off, n, b, bad, badN, badB)
	}
	err := r.Err()
	for _, name := range []string{"BAD_D", "BAD_N", "BAD_B"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
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
