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
		st, err := p.NewStream(ex)
		if err != nil {
			t.Fatal(err)
		}
		act, err := st.OnRequestHeaders(true)
		if err != nil || act != proxy.ActionContinue {
			t.Fatalf("OnRequestHeaders = %v, %v", act, err)
		}
		if v, ok := ex.RequestHeaders().GetString("x-wat"); !ok || string(v) != "ok" {
			t.Fatalf("x-wat = %q, %v", v, ok)
		}
		st.OnDone()
	}
}
