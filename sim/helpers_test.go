package sim

import (
	"strings"
	"testing"
)

// newManual returns an engine without a scheduler goroutine: the test
// drives it with step(), and simulated time moves only by steps.
func newManual(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := newEngine(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// textOf returns text of exactly n tokens (4 bytes each), distinct per tag.
func textOf(tag string, n int) string {
	var b strings.Builder
	for b.Len() < 4*n {
		b.WriteString(tag)
		b.WriteByte(byte('a' + b.Len()%26))
	}
	return b.String()[:4*n]
}

func submitText(t *testing.T, e *Engine, text string, maxTokens int, ignoreEOS bool) *seq {
	t.Helper()
	s, err := e.submit(request{prompt: tokenize(nil, text), maxTokens: maxTokens, ignoreEOS: ignoreEOS})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runUntil steps e until every sequence in ss has finished, failing after
// limit steps. It returns the plans of the steps it ran.
func runUntil(t *testing.T, e *Engine, limit int, ss ...*seq) []plan {
	t.Helper()
	var plans []plan
	for range limit {
		done := true
		for _, s := range ss {
			if _, fin, _ := e.progress(s); !fin {
				done = false
			}
		}
		if done {
			return plans
		}
		p := e.step()
		if len(p.work) == 0 {
			t.Fatalf("no work scheduled with unfinished sequences; stats %+v", e.Stats())
		}
		plans = append(plans, p)
	}
	t.Fatalf("sequences not finished after %d steps; stats %+v", limit, e.Stats())
	return nil
}
