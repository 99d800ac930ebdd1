package sdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestSharedDataBatchEncoding checks the batches' wire format (the
// host's sluice.shared_data_get_many and _set_many arguments), their
// accessors, Reset and the MaxSharedDataBatch limit.
func TestSharedDataBatchEncoding(t *testing.T) {
	var r SharedDataReads
	r.Add([]byte("ab"))
	r.Add(nil)
	if want := []byte{2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0}; !bytes.Equal(r.args, want) || r.Len() != 2 ||
		string(r.Key(0)) != "ab" || len(r.Key(1)) != 0 {
		t.Fatalf("reads: args %v, len %d", r.args, r.Len())
	}
	r.Reset()
	for i := range MaxSharedDataBatch {
		if !r.Add([]byte(fmt.Sprint(i))) {
			t.Fatalf("add %d refused", i)
		}
	}
	if r.Add([]byte("x")) || r.Len() != MaxSharedDataBatch || string(r.Key(63)) != "63" {
		t.Fatalf("reads past the limit: len %d", r.Len())
	}

	var w SharedDataWrites
	w.Add([]byte("k"), []byte("vv"), 7)
	w.Add([]byte(""), nil, 0)
	want := []byte{7, 0, 0, 0, 1, 0, 0, 0, 'k', 2, 0, 0, 0, 'v', 'v', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(w.args, want) || w.Len() != 2 {
		t.Fatalf("writes: args %v", w.args)
	}
	if k, v, cas := w.Write(0); string(k) != "k" || string(v) != "vv" || cas != 7 {
		t.Fatalf("write 0: %q %q %d", k, v, cas)
	}
	w.Reset()
	for i := range MaxSharedDataBatch {
		w.Add([]byte{byte(i)}, nil, 0)
	}
	if w.Add([]byte("x"), nil, 0) || w.Len() != MaxSharedDataBatch {
		t.Fatalf("writes past the limit: len %d", w.Len())
	}
}

// encodeSharedValues is the host's get_many answer for vs.
func encodeSharedValues(vs []SharedValue) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v.CAS)
		if !v.Found {
			b = binary.LittleEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v.Value)))
		b = append(b, v.Value...)
	}
	return b
}

func TestDecodeSharedValues(t *testing.T) {
	in := []SharedValue{{Value: []byte("one"), CAS: 3, Found: true}, {CAS: 9}, {Value: []byte{}, CAS: 4, Found: true}}
	res := encodeSharedValues(in)
	got, err := decodeSharedValues(nil, res, 3)
	if err != nil || len(got) != 3 || string(got[0].Value) != "one" || got[0].CAS != 3 || got[1].Found || got[1].CAS != 9 ||
		!got[2].Found || len(got[2].Value) != 0 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for name, c := range map[string]struct {
		res []byte
		n   int
	}{
		"fewer":     {res, 4},
		"more":      {res, 2},
		"truncated": {res[:len(res)-1], 3},
		"too long":  {[]byte{0, 0, 0, 0, 9, 0, 0, 0, 'x'}, 1},
	} {
		if _, err := decodeSharedValues(nil, c.res, c.n); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeSharedValues: any host answer decodes without a panic, and
// an accepted one re-encodes to itself.
func FuzzDecodeSharedValues(f *testing.F) {
	f.Add(encodeSharedValues([]SharedValue{{Value: []byte("v"), CAS: 1, Found: true}, {CAS: 2}}), 2)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1)
	f.Fuzz(func(t *testing.T, res []byte, n int) {
		n = n % (MaxSharedDataBatch + 1)
		if n < 0 {
			n = -n
		}
		got, err := decodeSharedValues(nil, res, n)
		if err != nil {
			return
		}
		if len(got) != n || !bytes.Equal(encodeSharedValues(got), res) {
			t.Fatalf("decoded %d of %d values that re-encode differently", len(got), n)
		}
	})
}
