package wasm

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

func TestFixtureOK(t *testing.T) {
	h := newTestHost(t)
	for _, name := range []string{"ok", "ok_abi_0_2_0"} {
		p := h.mustLoad(t, fixtureConfig(t, name))
		ex := newExchange("/")
		st := startRequest(t, p, ex, proxy.ActionContinue)
		if v, ok := ex.RequestHeaders().GetString("x-wat"); !ok || string(v) != "ok" {
			t.Fatalf("x-wat = %q, %v", v, ok)
		}
		st.OnDone()
	}
}
