package wasm

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestSharedDataForeignFunctions drives sluice.shared_data_policy and
// sluice.shared_data_delete through the host function a guest calls, on a
// plugin whose operator config also sets shared_data.
func TestSharedDataForeignFunctions(t *testing.T) {
	h := newTestHost(t)
	pc := fixtureConfig(t, "ok")
	pc.Instances = 1
	pc.SharedData = proxy.PluginSharedData{Prefixes: []proxy.PluginSharedDataPrefix{{Prefix: "op/", TTL: proxy.Duration(time.Hour)}}}
	p := h.mustLoad(t, pc)
	in := p.slots[0].inst.Load()
	clock := &fakeClock{ns: 1}
	p.shared.now = clock.now
	in.mu.Lock()
	defer in.mu.Unlock()
	stack := make([]uint64, 6)
	call := func(name string, args []byte) status {
		t.Helper()
		in.mem.Write(1024, []byte(name))
		in.mem.Write(2048, args)
		copy(stack, []uint64{1024, uint64(len(name)), 2048, uint64(len(args)), 512, 516})
		hostCallForeignFunction(&in.cc, in.mod, stack)
		return status(stack[0])
	}
	set := func(key, value string) status {
		in.mem.Write(1024, []byte(key))
		in.mem.Write(2048, []byte(value))
		copy(stack, []uint64{1024, uint64(len(key)), 2048, uint64(len(value)), 0})
		hostSetSharedData(&in.cc, in.mod, stack)
		return status(stack[0])
	}
	policy := func(ttlMillis, flags uint32, prefix string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, ttlMillis)
		return append(binary.LittleEndian.AppendUint32(b, flags), prefix...)
	}
	if st := call("sluice.shared_data_policy", policy(1000, 1, "g/")); st != statusOK {
		t.Fatalf("policy: status %d", st)
	}
	if st := call("sluice.shared_data_policy", policy(1000, 1, "op/")); st != statusOK {
		t.Fatalf("policy op/: status %d", st)
	}
	if st := call("sluice.shared_data_policy", policy(1000, 4, "x/")); st != statusBadArgument {
		t.Fatalf("unknown flag: status %d", st)
	}
	for _, k := range []string{"g/1", "op/1", "plain"} {
		if st := set(k, "v"); st != statusOK {
			t.Fatalf("set %s: %d", k, st)
		}
	}
	clock.advance(time.Second)
	mustMiss(t, p.shared, "g/1")  // the guest's TTL
	mustGet(t, p.shared, "op/1")  // the operator's prefix wins: 1h
	mustGet(t, p.shared, "plain") // no rule: forever, as in Envoy
	_, cas := mustGet(t, p.shared, "plain")
	del := func(cas uint32, key string) status {
		return call("sluice.shared_data_delete", append(binary.LittleEndian.AppendUint32(nil, cas), key...))
	}
	if st := del(cas+1, "plain"); st != statusCASMismatch {
		t.Fatalf("delete with a wrong cas: %d", st)
	}
	if st := del(cas, "plain"); st != statusOK {
		t.Fatalf("delete: %d", st)
	}
	mustMiss(t, p.shared, "plain")
	if st := del(0, "plain"); st != statusNotFound {
		t.Fatalf("delete again: %d", st)
	}
	if st := call("sluice.shared_data_delete", []byte{1, 2}); st != statusBadArgument {
		t.Fatalf("short delete args: %d", st)
	}
}

func TestSharedDataConfigValidate(t *testing.T) {
	h := newTestHost(t)
	pc := fixtureConfig(t, "ok")
	pc.SharedData = proxy.PluginSharedData{Prefixes: []proxy.PluginSharedDataPrefix{{Prefix: ""}}}
	if _, err := h.Load(t.Context(), pc); err == nil {
		t.Fatal("an empty shared_data prefix loaded")
	}
}

// TestE2ESharedDataDeleteAndPolicy: a Go guest deletes a key and sets a
// TTL policy through the SDK (sdk.DeleteSharedData,
// sdk.SetSharedDataPolicy), through the proxy.
func TestE2ESharedDataDeleteAndPolicy(t *testing.T) {
	s := newAsyncSetup(t, "", 2, proxyOptions{})
	clock := &fakeClock{ns: 1}
	s.p.shared.mu.Lock()
	s.p.shared.now = clock.now
	s.p.shared.mu.Unlock()
	if r := s.e.do(t, "GET", "/c", "", "x-async-counter", "hits"); r.header.Get("x-counter") != "1" {
		t.Fatalf("counter: %v", r.header)
	}
	if r := s.e.do(t, "GET", "/d", "", "x-async-shared-del", "hits"); r.header.Get("x-deleted") != "ok" {
		t.Fatalf("delete: %q", r.header.Get("x-deleted"))
	}
	if got := s.shared(t, "hits"); got != "sdk: proxy_get_shared_data: NOT_FOUND" {
		t.Fatalf("after delete: %q", got)
	}
	if r := s.e.do(t, "GET", "/d", "", "x-async-shared-del", "hits"); r.header.Get("x-deleted") != "sdk: proxy_call_foreign_function: NOT_FOUND" {
		t.Fatalf("delete again: %q", r.header.Get("x-deleted"))
	}
	// A counter under a 1h TTL policy expires after an hour.
	if r := s.e.do(t, "GET", "/p", "", "x-async-shared-ttl", "tmp/"); r.header.Get("x-policy") != "ok" {
		t.Fatalf("policy: %q", r.header.Get("x-policy"))
	}
	if r := s.e.do(t, "GET", "/c", "", "x-async-counter", "tmp/n"); r.header.Get("x-counter") != "1" {
		t.Fatalf("counter: %v", r.header)
	}
	s.p.shared.mu.Lock()
	clock.advance(time.Hour)
	s.p.shared.mu.Unlock()
	if got := s.shared(t, "tmp/n"); got != "sdk: proxy_get_shared_data: NOT_FOUND" {
		t.Fatalf("after the TTL: %q", got)
	}
}
