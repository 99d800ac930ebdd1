package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSerializeMapSpecExample(t *testing.T) {
	// The example from the v0.2.1 spec: {"a": "1"}, {"b": "22"}.
	want := []byte{
		2, 0, 0, 0,
		1, 0, 0, 0, 1, 0, 0, 0,
		1, 0, 0, 0, 2, 0, 0, 0,
		'a', 0, '1', 0, 'b', 0, '2', '2', 0,
	}
	got := SerializeMap([][2]string{{"a", "1"}, {"b", "22"}})
	if !bytes.Equal(got, want) {
		t.Fatalf("SerializeMap = % x\nwant           % x", got, want)
	}
}

func TestMapRoundTrip(t *testing.T) {
	for _, pairs := range [][][2]string{
		{{"a", "1"}},
		{{":path", "/v1/chat/completions"}, {":method", "POST"}, {"x-multi", "1"}, {"x-multi", "2"}},
		{{"", ""}, {"empty-value", ""}, {"", "empty-key"}},
		{{"nul\x00inside", "v\x00"}, {"utf8", "héllo ✓"}},
		{{strings.Repeat("k", 1000), strings.Repeat("v", 70000)}},
	} {
		enc := SerializeMap(pairs)
		got, err := DeserializeMap(enc)
		if err != nil {
			t.Fatalf("DeserializeMap(SerializeMap(%q)): %v", pairs, err)
		}
		if !reflect.DeepEqual(got, pairs) {
			t.Errorf("round trip of %q gave %q", pairs, got)
		}
	}
}

func TestEmptyMaps(t *testing.T) {
	if got := SerializeMap(nil); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Errorf("SerializeMap(nil) = % x, want a zero count", got)
	}
	for _, in := range [][]byte{nil, {}, {0}, {0, 0, 0, 0}} {
		got, err := DeserializeMap(in)
		if err != nil || len(got) != 0 {
			t.Errorf("DeserializeMap(% x) = %q, %v; want an empty map", in, got, err)
		}
	}
}

func TestDeserializeMapErrors(t *testing.T) {
	valid := SerializeMap([][2]string{{"key", "value"}, {"k2", "v2"}})
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"short count", []byte{1, 0}, "shorter than its 4-byte count"},
		{"single non-zero byte", []byte{1}, "shorter than its 4-byte count"},
		{"count too large", corrupt(func(b []byte) []byte { b[0] = 200; return b }), "claims 200 pairs"},
		{"count overflows", corrupt(func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 0xFFFFFFFF); return b }), "claims 4294967295 pairs"},
		{"key length past end", corrupt(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 0xFFFFFFF0); return b }), "runs past the end"},
		{"value length past end", corrupt(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 100); return b }), "pair 1"},
		{"key not terminated", corrupt(func(b []byte) []byte { b[20+3] = 'x'; return b }), "key is not NUL-terminated"},
		{"value not terminated", corrupt(func(b []byte) []byte { b[20+4+5] = 'x'; return b }), "value is not NUL-terminated"},
		{"trailing bytes", append(bytes.Clone(valid), 0), "1 trailing bytes"},
		{"zero count with trailer", []byte{0, 0, 0, 0, 9}, "0 pairs has 1 trailing bytes"},
		{"truncated", valid[:len(valid)-1], "runs past the end"},
	} {
		_, err := DeserializeMap(c.in)
		if err == nil || !errors.Is(err, ErrParseFailure) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: DeserializeMap(% x) error %v, want ErrParseFailure mentioning %q", c.name, c.in, err, c.want)
		}
	}
}

// FuzzDeserializeMap checks that arbitrary bytes never panic and that
// anything accepted re-serialises to the same bytes (the format has a single
// encoding for non-empty maps) or, for the empty forms, to a zero count.
func FuzzDeserializeMap(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(SerializeMap([][2]string{{"a", "1"}, {"b", "22"}}))
	f.Add(SerializeMap([][2]string{{":path", "/"}, {"", ""}}))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := DeserializeMap(data)
		if err != nil {
			if !errors.Is(err, ErrParseFailure) {
				t.Fatalf("error %v does not wrap ErrParseFailure", err)
			}
			return
		}
		enc := SerializeMap(pairs)
		if len(pairs) == 0 {
			if !bytes.Equal(enc, []byte{0, 0, 0, 0}) {
				t.Fatalf("empty map re-encodes to % x", enc)
			}
			return
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("accepted % x but it re-encodes to % x", data, enc)
		}
	})
}

func TestSerializePropertyPath(t *testing.T) {
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"plugin_name"}, "plugin_name"},
		{[]string{"request", "path"}, "request\x00path"},
		{[]string{"a", "", "c"}, "a\x00\x00c"},
	} {
		got, err := SerializePropertyPath(c.path)
		if err != nil || string(got) != c.want {
			t.Errorf("SerializePropertyPath(%q) = %q, %v; want %q", c.path, got, err, c.want)
		}
	}
	for _, bad := range [][]string{nil, {}, {"request", "pa\x00th"}} {
		if _, err := SerializePropertyPath(bad); !errors.Is(err, ErrBadArgument) {
			t.Errorf("SerializePropertyPath(%q) error %v, want ErrBadArgument", bad, err)
		}
	}
}

// TestAppendPropertyPathReuses checks that GetProperty's and
// SetProperty's serialization reuses its buffer: no allocation once the
// buffer is large enough.
func TestAppendPropertyPathReuses(t *testing.T) {
	path := []string{"sluice", "endpoint"}
	buf, err := appendPropertyPath(nil, path)
	if err != nil || string(buf) != "sluice\x00endpoint" {
		t.Fatalf("appendPropertyPath = %q, %v", buf, err)
	}
	if n := testing.AllocsPerRun(100, func() { buf, _ = appendPropertyPath(buf[:0], path) }); n != 0 {
		t.Errorf("serializing into a large enough buffer allocates %v times", n)
	}
	if _, err := appendPropertyPath(buf[:0], []string{"a\x00b"}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("NUL in a segment: %v, want ErrBadArgument", err)
	}
}
