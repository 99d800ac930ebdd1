package wasm

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/prompthash"
)

// promptHashCaller calls a foreign function on the request's prompt
// (sluice.prompt_block_hashes unless name is set) the way a guest does,
// on the "ok" fixture (a one-page memory whose allocator refuses what
// does not fit), for a request whose body is set per call.
type promptHashCaller struct {
	p     *Plugin
	in    *instance
	s     *stream
	name  []byte
	stack []uint64
}

func newPromptHashCaller(tb testing.TB) *promptHashCaller {
	h := newTestHost(tb)
	pc := fixtureConfig(tb, "ok")
	pc.Instances = 1
	p := h.mustLoad(tb, pc)
	in := p.slots[0].inst.Load()
	return &promptHashCaller{p: p, in: in, s: &stream{p: p, inst: in, ex: newExchange("/v1/chat/completions"), id: 2}, name: promptHashesName, stack: make([]uint64, 6)}
}

// call runs the function with args in the HTTP context (or the root
// context when root) for body, the name at 1024, args at 2048, the
// result's pointer and size written at retPtr and retPtr+4. It returns
// the status and, on OK, the result read back from guest memory.
func (c *promptHashCaller) call(tb testing.TB, body, args []byte, root bool, retPtr uint32) (status, []byte) {
	tb.Helper()
	in := c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	st := c.invoke(tb, body, args, root, retPtr)
	if st != statusOK {
		return st, nil
	}
	ptr, _ := in.mem.ReadUint32Le(retPtr)
	size, _ := in.mem.ReadUint32Le(retPtr + 4)
	res, ok := in.mem.Read(ptr, size)
	if !ok {
		tb.Fatalf("result at %d+%d is outside guest memory", ptr, size)
	}
	return st, bytes.Clone(res)
}

// invoke makes the host call; in.mu must be held.
func (c *promptHashCaller) invoke(tb testing.TB, body, args []byte, root bool, retPtr uint32) status {
	in := c.in
	// A new HTTP context resets the fixture's bump allocator.
	if _, err := in.call(cbContextCreate, nil, 2, rootContextID, 0, c.p.callTimeout); err != nil {
		tb.Fatal(err)
	}
	c.s.ex.SetRequestBody(body)
	in.mem.Write(1024, c.name)
	in.mem.Write(2048, args)
	in.cur, in.eff, in.phase = c.s, c.s, cbRequestBody
	if root {
		in.cur, in.eff = nil, nil
	}
	c.stack[0], c.stack[1], c.stack[2], c.stack[3] = 1024, uint64(len(c.name)), 2048, uint64(len(args))
	c.stack[4], c.stack[5] = uint64(retPtr), uint64(retPtr)+4
	hostCallForeignFunction(&in.cc, in.mod, c.stack)
	in.endEffective()
	in.cur, in.eff = nil, nil
	return status(c.stack[0])
}

var promptHashesName = []byte("sluice.prompt_block_hashes")

func promptArgs(chunk, max uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, chunk), max)
}

// wantPromptHashes is the result the function must give for body: the
// seed, then prompthash's block hashes, 8 bytes little-endian each.
func wantPromptHashes(body []byte, chunk, max int) ([]byte, bool) {
	text, model, ok := prompthash.Quick(body)
	if !ok {
		return nil, false
	}
	seed := prompthash.Seed(model)
	var out []byte
	out = binary.LittleEndian.AppendUint64(out, seed)
	for _, h := range prompthash.AppendBlocks(nil, seed, text, chunk, max) {
		out = binary.LittleEndian.AppendUint64(out, h)
	}
	return out, true
}

// TestForeignPromptBlockHashes: the host's answer is the seed and the
// block hashes prompthash gives (the cacheaware plugin's own fallback);
// bad arguments, the root context, a bad result pointer and an unusual
// body get a clear status.
func TestForeignPromptBlockHashes(t *testing.T) {
	c := newPromptHashCaller(t)
	chat := []byte(`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("tell me more ", 40) + `"}]}` + "\n")
	for _, a := range []struct{ chunk, max uint32 }{{64, 1 << 20}, {16, 1 << 20}, {64, 128}, {64, 0}, {4096, 1 << 20}} {
		st, got := c.call(t, chat, promptArgs(a.chunk, a.max), false, 512)
		want, _ := wantPromptHashes(chat, int(a.chunk), int(a.max))
		if st != statusOK || !bytes.Equal(got, want) {
			t.Fatalf("chunk %d max %d: status %d, %d bytes, want %d bytes", a.chunk, a.max, st, len(got), len(want))
		}
	}
	if st, got := c.call(t, []byte(`{"model":"m","prompt":"short"}`), promptArgs(64, 1<<20), false, 512); st != statusOK || len(got) != 8 {
		t.Fatalf("a prompt shorter than a chunk: status %d, %x (want the seed only)", st, got)
	}
	for name, tc := range map[string]struct {
		body, args []byte
		root       bool
		retPtr     uint32
		want       status
	}{
		"no args":           {chat, nil, false, 512, statusBadArgument},
		"short args":        {chat, []byte{64, 0, 0, 0}, false, 512, statusBadArgument},
		"long args":         {chat, append(promptArgs(64, 1), 0), false, 512, statusBadArgument},
		"chunk 15":          {chat, promptArgs(15, 1<<20), false, 512, statusBadArgument},
		"chunk 65537":       {chat, promptArgs(64<<10+1, 1<<20), false, 512, statusBadArgument},
		"root context":      {chat, promptArgs(64, 1<<20), true, 512, statusBadArgument},
		"result off memory": {chat, promptArgs(64, 1<<20), false, 65534, statusInvalidMemoryAccess},
		"model after":       {[]byte(`{"messages":[],"model":"m"}`), promptArgs(64, 1<<20), false, 512, statusParseFailure},
		"messages twice":    {[]byte(`{"model":"m","messages":[],"messages":[]}`), promptArgs(64, 1<<20), false, 512, statusParseFailure},
		"model twice":       {[]byte(`{"model":"m","prompt":"p","model":"n"}`), promptArgs(64, 1<<20), false, 512, statusParseFailure},
		"not json":          {[]byte(`hello`), promptArgs(64, 1<<20), false, 512, statusParseFailure},
		"empty body":        {nil, promptArgs(64, 1<<20), false, 512, statusParseFailure},
	} {
		if st, _ := c.call(t, tc.body, tc.args, tc.root, tc.retPtr); st != tc.want {
			t.Errorf("%s: status %d, want %d", name, st, tc.want)
		}
	}
}

// FuzzPromptBlockHashes drives the function through the host call a
// guest makes, with arbitrary arguments, result pointer and body: no
// panic, a known status, and on OK exactly prompthash's hashes.
func FuzzPromptBlockHashes(f *testing.F) {
	c := newPromptHashCaller(f)
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"0123456789abcdef0123456789abcdef"}]}`), uint32(16), uint32(1<<20), uint32(512))
	f.Add([]byte(`{"model":"m","prompt":"0123456789abcdef0123456789abcdef"}`), uint32(64), uint32(0), uint32(65530))
	f.Add([]byte(` {"n":1,"model":"a\"b","prompt":"x"} `), uint32(0xffffffff), uint32(0xffffffff), uint32(0xfffffffc))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"0123456789abcdef","content":"0123456789abcdef0123456789abcdef"}]}`), uint32(16), uint32(1<<20), uint32(512))
	f.Add([]byte(`{"model":"m","prompt":"0123456789abcdef","messages":[{"role":"user","content":"0123456789abcdef"}]}`), uint32(16), uint32(1<<20), uint32(512))
	f.Fuzz(func(t *testing.T, body []byte, chunk, max, retPtr uint32) {
		if len(body) > 16<<10 {
			return
		}
		st, got := c.call(t, body, promptArgs(chunk, max), false, retPtr)
		if !knownStatus(st) {
			t.Fatalf("status %d", st)
		}
		if st != statusOK {
			return
		}
		want, ok := wantPromptHashes(body, int(chunk), int(max))
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("chunk %d max %d: got %x, want %x (quick %v)", chunk, max, got, want, ok)
		}
	})
}
