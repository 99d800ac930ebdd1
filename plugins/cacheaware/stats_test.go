package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// hostStats renders pools of endpoints in the shape of
// proxy.Exchange.AppendUpstreamsJSON (member order, number formats).
func hostStats(pools ...[]string) string {
	var b strings.Builder
	b.WriteString(`{"pools":{`)
	for i, eps := range pools {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p%d":{"policy":"round_robin","healthy":%d,"total":%d,"max_in_flight":0,"queued":0,"endpoints":{`, i, len(eps), len(eps))
		for j, ep := range eps {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%s":{"healthy":%v,"ejected":false,"weight":1,"in_flight":%d,"queue_depth":%g,"running":3,"kv_cache_usage":0.125}`,
				ep, !strings.HasPrefix(ep, "down"), j*7, float64(j)*1.5)
		}
		b.WriteString("}}")
	}
	b.WriteString("}}")
	return b.String()
}

// TestFastPoolLoads: the host's own shape is read in one pass, the same
// as the validating scanner reads it, and a repeated snapshot allocates
// nothing; anything else is left to the scanner.
func TestFastPoolLoads(t *testing.T) {
	one := hostStats([]string{"10.0.0.1:8000", "down:1", "10.0.0.3:8000", "a b:1", "10.0.0.5:8000"})
	two := hostStats([]string{"x:1"}, []string{"10.0.0.1:8000", "10.0.0.2:8000"})
	for _, c := range []struct {
		data, pool, name string
		n                int
	}{
		{one, "", "p0", 3}, {one, "p0", "p0", 3}, {one, "nope", "nope", 0},
		{two, "p1", "p1", 2}, {two, "p0", "p0", 1}, {hostStats(), "", "", 0}, {hostStats(nil), "p0", "p0", 0},
	} {
		name, got, ok := fastPoolLoads(nil, []byte(c.data), c.pool)
		if !ok || name != c.name || len(got) != c.n {
			t.Fatalf("pool %q of %s: %q %v %v", c.pool, c.data, name, got, ok)
		}
		sname, sgot, err := scanPoolLoads(nil, []byte(c.data), c.pool)
		if err != nil || sname != name || !slices.Equal(sgot, got) {
			t.Fatalf("pool %q: fast %q %v, scanner %q %v %v", c.pool, name, got, sname, sgot, err)
		}
	}
	if _, got, _ := fastPoolLoads(nil, []byte(one), ""); got[1].load != 14+3 {
		t.Fatalf("loads: %v", got)
	}
	// Two pools and none chosen, reordered members, space, escapes: the
	// scanner's job.
	for _, data := range []string{two,
		strings.Replace(one, `"healthy":true,"ejected":false`, `"ejected":false,"healthy":true`, 1),
		strings.Replace(one, `{"pools":`, `{"pools" :`, 1), strings.Replace(one, `"10.0.0.1:8000"`, `"10.0.0.1:80\u0030"`, 1), one + " "} {
		if name, got, ok := fastPoolLoads(nil, []byte(data), ""); ok {
			t.Errorf("fast path took %s: %q %v", data, name, got)
		}
	}
	dst, data := make([]endpoint, 0, 8), []byte(one)
	_, dst, _ = fastPoolLoads(dst, data, "")
	if allocs := testing.AllocsPerRun(100, func() { _, dst, _ = fastPoolLoads(dst[:0], data, "p0") }); allocs != 0 {
		t.Errorf("a repeated snapshot allocates %v times", allocs)
	}
}

// FuzzPoolLoads: whatever the input, the fast path does not panic, and
// what it accepts the validating scanner reads the same way.
func FuzzPoolLoads(f *testing.F) {
	f.Add(hostStats([]string{"10.0.0.1:8000", "down:1", "10.0.0.3:8000"}), "")
	f.Add(hostStats([]string{"x:1"}, []string{"y:1", "z:2"}), "p1")
	f.Add(strings.Replace(hostStats([]string{"x:1"}), `"queue_depth":0`, `"queue_depth":-2.5e+400`, 1), "p0")
	f.Add(strings.Replace(hostStats([]string{"x:1"}), `"in_flight":0`, `"in_flight":12345678901234567890`, 1), "")
	f.Fuzz(func(t *testing.T, data, pool string) {
		name, got, ok := fastPoolLoads(nil, []byte(data), pool)
		if !ok {
			return
		}
		sname, sgot, err := scanPoolLoads(nil, []byte(data), pool)
		if err != nil || sname != name || !slices.Equal(sgot, got) {
			t.Fatalf("fast %q %v, scanner %q %v %v", name, got, sname, sgot, err)
		}
	})
}
