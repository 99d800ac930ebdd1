package wasm

import (
	"bytes"
	"testing"
)

func TestParseSkipCallbacks(t *testing.T) {
	skip, ok := parseSkipCallbacks([]byte("proxy_on_response_headers,proxy_on_log,proxy_on_response_headers"))
	if !ok || !skip[cbResponseHeaders] || !skip[cbLog] || skip[cbRequestBody] || skip[cbDelete] {
		t.Fatalf("parsed %v, %v", skip, ok)
	}
	if skip, ok := parseSkipCallbacks(nil); !ok || skip != ([numCallbacks]bool{}) {
		t.Fatalf("empty: %v, %v", skip, ok)
	}
	for _, bad := range []string{"proxy_on_delete", "proxy_on_context_create", "proxy_on_tick", "proxy_on_log,", ",proxy_on_log", "proxy_on_log, proxy_on_done", "nope"} {
		if _, ok := parseSkipCallbacks([]byte(bad)); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSkipCallbacks: at start-up the instance drops the named callbacks
// (its streams then continue without calling the guest there); after
// start-up, or from an HTTP context, the call is refused; other
// instances of the plugin keep every callback. (The "ok" fixture exports
// proxy_on_request_headers and not the response callbacks.)
func TestSkipCallbacks(t *testing.T) {
	h := newTestHost(t)
	pc := fixtureConfig(t, "ok")
	pc.Instances = 2
	p := h.mustLoad(t, pc)
	a, b := p.slots[0].inst.Load(), p.slots[1].inst.Load()
	call := func(in *instance, starting bool, cur *stream, args string) status {
		t.Helper()
		in.mu.Lock()
		defer in.mu.Unlock()
		in.starting, in.cur = starting, cur
		defer func() { in.starting, in.cur = false, nil }()
		const name = "sluice.skip_callbacks"
		in.mem.Write(1024, []byte(name))
		in.mem.Write(2048, []byte(args))
		stack := []uint64{1024, uint64(len(name)), 2048, uint64(len(args)), 512, 516}
		hostCallForeignFunction(&in.cc, in.mod, stack)
		return status(stack[0])
	}
	const names = "proxy_on_request_headers,proxy_on_response_body"
	if st := call(a, false, nil, names); st != statusBadArgument {
		t.Fatalf("after start-up: status %d", st)
	}
	if st := call(a, true, &stream{p: p, inst: a}, names); st != statusBadArgument {
		t.Fatalf("from an HTTP context: status %d", st)
	}
	if st := call(a, true, nil, names+",proxy_on_delete"); st != statusBadArgument || a.fns[cbRequestHeaders] == nil {
		t.Fatalf("a non-skippable name: status %d, request headers dropped %v", st, a.fns[cbRequestHeaders] == nil)
	}
	if st := call(a, true, nil, names); st != statusOK {
		t.Fatalf("at start-up: status %d", st)
	}
	if a.fns[cbRequestHeaders] != nil || a.fns[cbContextCreate] == nil || a.fns[cbConfigure] == nil {
		t.Fatal("the instance kept a skipped callback or lost another")
	}
	if b.fns[cbRequestHeaders] == nil {
		t.Fatal("another instance lost its callbacks")
	}
	// The fixture's proxy_on_request_headers adds "x-wat: ok": on a, the
	// request continues without it; on b the guest still runs.
	for _, c := range []struct {
		in   *instance
		want string
	}{{a, ""}, {b, "ok"}} {
		s := &stream{p: p, inst: c.in, ex: newExchange("/x"), id: 2}
		act, err := s.OnRequestHeaders(true)
		if got, _ := s.ex.RequestHeaders().Get([]byte("x-wat")); err != nil || act != 0 || string(got) != c.want {
			t.Errorf("request headers: %v, %v, x-wat %q, want %q", act, err, got, c.want)
		}
	}
}

// FuzzParseSkipCallbacks: whatever a guest passes, the parse does not
// panic, and what it accepts is a list of skippable export names.
func FuzzParseSkipCallbacks(f *testing.F) {
	f.Add([]byte("proxy_on_response_headers,proxy_on_response_body,proxy_on_log,proxy_on_done"))
	f.Add([]byte("proxy_on_delete"))
	f.Add([]byte(",,"))
	f.Fuzz(func(t *testing.T, args []byte) {
		skip, ok := parseSkipCallbacks(args)
		if !ok {
			return
		}
		for _, name := range bytes.Split(args, []byte{','}) {
			if len(args) == 0 {
				break
			}
			found := false
			for _, cb := range skippableCallbacks {
				found = found || string(name) == callbackSpecs[cb].name && skip[cb]
			}
			if !found {
				t.Fatalf("accepted %q in %q", name, args)
			}
		}
		if skip[cbContextCreate] || skip[cbDelete] || skip[cbTick] {
			t.Fatalf("%q skips a callback that must stay", args)
		}
	})
}
