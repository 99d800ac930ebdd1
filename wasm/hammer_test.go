package wasm

import (
	"fmt"
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
