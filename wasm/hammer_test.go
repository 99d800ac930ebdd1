package wasm

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestHammerPauseResume sends many concurrent requests through the probe
// plugin on two instances. Half of them pause in the request headers and
// are resumed from proxy_on_tick through proxy_set_effective_context; each
// carries a unique value the plugin echoes into a response header, so any
// cross-talk between contexts shows.
func TestHammerPauseResume(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, probePkg, "probe", "", func(pc *proxy.PluginConfig) { pc.Instances = 2 })
	e := startProxy(t, p)
	const workers, perWorker = 8, 20
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("worker %d: out of time after %d requests", w, i)
					return
				}
				id := fmt.Sprintf("w%d-r%d", w, i)
				hdrs := []string{"x-probe-echo", id}
				if i%2 == 0 {
					hdrs = append(hdrs, "x-probe-pause", "1")
				}
				r := e.do(t, "GET", "/hammer/"+id, "", hdrs...)
				if r.status != 200 || r.header.Get("x-echo") != id {
					errs <- fmt.Errorf("%s: status %d, x-echo %q, body %q", id, r.status, r.header.Get("x-echo"), r.body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	for _, kind := range errorKinds {
		if got := h.metric(`sluice_plugin_errors_total{plugin="probe",kind="` + kind + `"}`); got != "0" {
			t.Errorf("errors of kind %s: %s", kind, got)
		}
	}
}

// TestHammerSharedDataCAS increments shared counters with get/CAS-set
// retry loops from many goroutines: directly on a store, and through the
// host functions of several instances of plugins sharing a vm_id. The
// counters do not exist at the start: every goroutine may find one
// missing and create it with the creation CAS its get returned. No update
// may be lost, the creating one included.
func TestHammerSharedDataCAS(t *testing.T) {
	// incr adds one to a counter, starting from 0 when the get finds it
	// missing. Every set carries the cas the get returned (never 0, which
	// would be an unconditional set): a store whose CAS or creation CAS
	// were broken loses updates and fails the test.
	incr := func(get func() ([]byte, uint32, status), set func([]byte, uint32) status) error {
		for {
			v, cas, st := get()
			switch st {
			case statusOK:
			case statusNotFound:
				v = []byte("0")
			default:
				return fmt.Errorf("get: status %d", st)
			}
			if cas == 0 {
				return fmt.Errorf("get: cas 0 for %q (status %d)", v, st)
			}
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("get: value %q", v)
			}
			switch st := set([]byte(strconv.Itoa(n+1)), cas); st {
			case statusOK:
				return nil
			case statusCASMismatch:
			default:
				return fmt.Errorf("set: status %d", st)
			}
		}
	}
	t.Run("store", func(t *testing.T) {
		d := newSharedData()
		const goroutines, perG, keys = 16, 500, 4
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := []byte(fmt.Sprint("k", g%keys))
				for range perG {
					err := incr(func() ([]byte, uint32, status) {
						v, cas, ok := d.get(nil, key)
						if !ok {
							return nil, cas, statusNotFound
						}
						return v, cas, statusOK
					}, func(v []byte, cas uint32) status { return d.set(key, v, cas, sharedPolicy{}) })
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for k := range keys {
			v, _, _ := d.get(nil, []byte(fmt.Sprint("k", k)))
			if want := strconv.Itoa(goroutines / keys * perG); string(v) != want {
				t.Errorf("k%d = %s, want %s", k, v, want)
			}
		}
	})
	t.Run("instances", func(t *testing.T) {
		h := newTestHost(t)
		var ins []*instance
		for i := range 3 {
			pc := fixtureConfig(t, "ok")
			pc.Name, pc.VMID, pc.Instances = fmt.Sprint("p", i), "hammer", 2
			p := h.mustLoad(t, pc)
			for j := range p.slots {
				ins = append(ins, p.slots[j].inst.Load())
			}
		}
		const perG = 200
		key := []byte("ctr")
		var wg sync.WaitGroup
		for g := range 2 * len(ins) {
			in := ins[g%len(ins)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				stack := make([]uint64, 5)
				get := func() ([]byte, uint32, status) {
					// A new HTTP context resets the fixture's bump
					// allocator, so retries never exhaust it.
					if _, err := in.call(cbContextCreate, nil, 2, rootContextID, 0, time.Second); err != nil {
						t.Error(err)
						return nil, 0, statusInternalFailure
					}
					in.mem.Write(1024, key)
					copy(stack, []uint64{1024, uint64(len(key)), 512, 516, 520})
					in.mem.WriteUint32Le(520, 0)
					hostGetSharedData(&in.cc, in.mod, stack)
					cas, _ := in.mem.ReadUint32Le(520)
					if st := status(stack[0]); st != statusOK {
						return nil, cas, st
					}
					ptr, _ := in.mem.ReadUint32Le(512)
					size, _ := in.mem.ReadUint32Le(516)
					v, _ := in.mem.Read(ptr, size)
					return append([]byte(nil), v...), cas, statusOK
				}
				set := func(v []byte, cas uint32) status {
					in.mem.Write(2048, v)
					copy(stack, []uint64{1024, uint64(len(key)), 2048, uint64(len(v)), uint64(cas)})
					hostSetSharedData(&in.cc, in.mod, stack)
					return status(stack[0])
				}
				for range perG {
					in.mu.Lock()
					err := incr(get, set)
					in.mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		v, _, _ := ins[0].p.shared.get(nil, key)
		if want := strconv.Itoa(2 * len(ins) * perG); string(v) != want {
			t.Errorf("ctr = %s, want %s", v, want)
		}
	})
}
