package upstreams

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"unsafe"
)

// encodeLoads writes a sluice.endpoint_loads answer with the given
// number of fields per endpoint (the loads' three, then fields beyond
// them set to 99).
func encodeLoads(pool string, fields int, eps ...Load) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(pool)))
	b = append(b, pool...)
	b = binary.LittleEndian.AppendUint32(b, uint32(fields))
	for _, e := range eps {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Addr)))
		b = append(b, e.Addr...)
		for i, v := range []float64{e.InFlight, e.QueueDepth, e.KVCacheUsage} {
			if i < fields {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
		for i := 3; i < fields; i++ {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(99))
		}
	}
	return b
}

func TestDecodeLoads(t *testing.T) {
	eps := []Load{{"10.0.0.1:8000", 2, 3, 0.5}, {"10.0.0.2:8000", 0, 1, 0.25}}
	pool, got, ok := DecodeLoads(nil, encodeLoads("vllm", 3, eps...))
	if !ok || string(pool) != "vllm" || !slices.Equal(got, eps) {
		t.Fatalf("three fields: %q %+v %v", pool, got, ok)
	}
	// A later host's extra fields are skipped; an earlier one's missing
	// KV-cache usage reads as 0.
	if _, more, ok := DecodeLoads(nil, encodeLoads("vllm", 5, eps...)); !ok || !slices.Equal(more, eps) {
		t.Errorf("five fields: %+v %v", more, ok)
	}
	_, fewer, ok := DecodeLoads(nil, encodeLoads("vllm", 2, eps...))
	if !ok || len(fewer) != 2 || fewer[0].KVCacheUsage != 0 || fewer[1].QueueDepth != 1 {
		t.Errorf("two fields: %+v %v", fewer, ok)
	}
	// The same addresses at the same positions keep their strings.
	first := got[0].Addr
	_, next, _ := DecodeLoads(got, encodeLoads("vllm", 3, Load{"10.0.0.1:8000", 7, 0, 0}))
	if len(next) != 1 || next[0].InFlight != 7 || unsafe.StringData(next[0].Addr) != unsafe.StringData(first) {
		t.Errorf("the same address again: %+v (a new string: %v)", next, unsafe.StringData(next[0].Addr) != unsafe.StringData(first))
	}
	buf := make([]Load, 0, 4)
	answer := encodeLoads("vllm", 3, eps...)
	_, buf, _ = DecodeLoads(buf, answer)
	if n := testing.AllocsPerRun(100, func() { _, buf, _ = DecodeLoads(buf, answer) }); n != 0 {
		t.Errorf("decoding the same pool again allocates %v times", n)
	}
	// No pool named among several: an empty name and no endpoint.
	if pool, none, ok := DecodeLoads(nil, encodeLoads("", 3)); !ok || len(pool) != 0 || len(none) != 0 {
		t.Errorf("no pool: %q %+v %v", pool, none, ok)
	}
	whole := encodeLoads("vllm", 3, eps...)
	for _, bad := range [][]byte{nil, whole[:3], whole[:8], whole[:len(whole)-1], append(whole[:len(whole):len(whole)], 1)} {
		if _, out, ok := DecodeLoads(got, bad); ok || len(out) != 0 {
			t.Errorf("malformed %x: accepted, %+v", bad, out)
		}
	}
}

// FuzzDecodeLoads: any answer decodes without panicking, and one it
// accepts with three fields encodes back to itself.
func FuzzDecodeLoads(f *testing.F) {
	f.Add(encodeLoads("vllm", 3, Load{"a:1", 1, 2, 0.5}, Load{"b:2", 0, 0, 0}))
	f.Add(encodeLoads("", 3))
	f.Add(encodeLoads("p", 4, Load{"a:1", 1, 2, 0.5}))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pool, eps, ok := DecodeLoads(nil, data)
		if !ok {
			return
		}
		if len(data) >= 8+len(pool) && binary.LittleEndian.Uint32(data[4+len(pool):]) == 3 {
			if again := encodeLoads(string(pool), 3, eps...); string(again) != string(data) {
				t.Fatalf("%x decoded to %q %+v, which encodes to %x", data, pool, eps, again)
			}
		}
	})
}

func TestSnapshotLoads(t *testing.T) {
	s, err := Parse("p", []byte(`{"pools":{"a":{"endpoints":{"x:1":{"healthy":true,"in_flight":2,"queue_depth":3,"kv_cache_usage":0.5},"x:2":{"healthy":false}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Loads(nil, "a"); len(got) != 1 || got[0] != (Load{"x:1", 2, 3, 0.5}) {
		t.Errorf("Loads(a) = %+v", got)
	}
	if got := s.Loads(nil, "missing"); len(got) != 0 {
		t.Errorf("Loads(missing) = %+v", got)
	}
}
