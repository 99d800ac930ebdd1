package proxy

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// poolLoad is one endpoint of AppendPoolLoads' or AppendEndpointLoads'
// answer.
type poolLoad struct {
	addr                  string
	inFlight, waiting, kv float64
}

// decodePoolLoads splits AppendPoolLoads' answer, failing t on a
// malformed one.
func decodePoolLoads(t *testing.T, b []byte) (string, []poolLoad) {
	t.Helper()
	return decodeLoads(t, b, false)
}

// decodeLoads splits AppendPoolLoads' answer or, when counted,
// AppendEndpointLoads' (which must carry NumLoadFields fields), failing
// t on a malformed one.
func decodeLoads(t *testing.T, b []byte, counted bool) (string, []poolLoad) {
	t.Helper()
	field := func() string {
		if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
			t.Fatalf("truncated answer: %x", b)
		}
		n := binary.LittleEndian.Uint32(b)
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s
	}
	name := field()
	fields := 2
	if counted {
		if len(b) < 4 || binary.LittleEndian.Uint32(b) != NumLoadFields {
			t.Fatalf("no field count of %d after the name: %x", NumLoadFields, b)
		}
		fields, b = NumLoadFields, b[4:]
	}
	var eps []poolLoad
	for len(b) > 0 {
		e := poolLoad{addr: field()}
		if len(b) < 8*fields {
			t.Fatalf("truncated endpoint %q", e.addr)
		}
		e.inFlight = math.Float64frombits(binary.LittleEndian.Uint64(b))
		e.waiting = math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
		if counted {
			e.kv = math.Float64frombits(binary.LittleEndian.Uint64(b[8*LoadKVCacheUsage:]))
		}
		b = b[8*fields:]
		eps = append(eps, e)
	}
	return name, eps
}

// TestAppendPoolLoads: the binary loads name the pool asked for (or the
// only one), list its endpoints in rotation with their requests in
// flight and scraped queue depth, and name no endpoint for a pool that
// does not exist or for "" among several pools.
func TestAppendPoolLoads(t *testing.T) {
	a := startUpstreams(t, 3, proxytest.Options{})
	b := startUpstreams(t, 1, proxytest.Options{})
	_ = a[1].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 4})
	cfg := NewConfig().WithUpstreamConfig(UpstreamConfig{Name: "llm", Endpoints: urlsOf(a), MetricsPath: "/metrics",
		ScrapeInterval: Duration(20 * 1e6)})
	one := startProxy(t, cfg, Options{}) // serving: the scraper runs
	waitFor(t, "scrape", func() bool { return one.pools.List()[0].Endpoints()[1].QueueDepth() == 4 })
	one.pools.List()[0].Endpoints()[2].SetActive(false)
	ex := one.NewExchange()
	for _, asked := range []string{"llm", ""} {
		name, eps := decodePoolLoads(t, ex.AppendPoolLoads(nil, []byte(asked)))
		if name != "llm" || len(eps) != 2 || eps[0].addr != a[0].Addr || eps[1].addr != a[1].Addr ||
			eps[1].waiting != 4 || eps[0].inFlight != 0 {
			t.Fatalf("asked %q: %q %+v", asked, name, eps)
		}
	}
	if name, eps := decodePoolLoads(t, ex.AppendPoolLoads([]byte("kept"), []byte("nope"))[4:]); name != "nope" || len(eps) != 0 {
		t.Fatalf("unknown pool: %q %+v", name, eps)
	}

	two, err := NewServer(NewConfig().WithUpstream("a", urlsOf(a)...).WithUpstream("b", urlsOf(b)...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	ex = two.NewExchange()
	if name, eps := decodePoolLoads(t, ex.AppendPoolLoads(nil, nil)); name != "" || len(eps) != 0 {
		t.Fatalf("no pool named among two: %q %+v", name, eps)
	}
	if name, eps := decodePoolLoads(t, ex.AppendPoolLoads(nil, []byte("b"))); name != "b" || len(eps) != 1 || !strings.Contains(b[0].URL, eps[0].addr) {
		t.Fatalf("pool b: %q %+v", name, eps)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ex.AppendPoolLoads(make([]byte, 0, 256), []byte("a")) }); n > 1 {
		t.Errorf("AppendPoolLoads allocates %v times (the buffer only)", n)
	}
}

// TestAppendEndpointLoads: AppendPoolLoads' answer with a field count
// and each endpoint's scraped KV-cache usage, for the same pools.
func TestAppendEndpointLoads(t *testing.T) {
	a := startUpstreams(t, 3, proxytest.Options{})
	_ = a[1].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 4, KVCacheUsage: 0.25})
	cfg := NewConfig().WithUpstreamConfig(UpstreamConfig{Name: "llm", Endpoints: urlsOf(a), MetricsPath: "/metrics",
		ScrapeInterval: Duration(20 * 1e6)})
	srv := startProxy(t, cfg, Options{})
	waitFor(t, "scrape", func() bool { return srv.pools.List()[0].Endpoints()[1].KVCacheUsage() == 0.25 })
	srv.pools.List()[0].Endpoints()[2].SetActive(false)
	ex := srv.NewExchange()
	for _, asked := range []string{"llm", ""} {
		name, eps := decodeLoads(t, ex.AppendEndpointLoads(nil, []byte(asked)), true)
		if name != "llm" || len(eps) != 2 || eps[0].addr != a[0].Addr || eps[1].addr != a[1].Addr ||
			eps[1].waiting != 4 || eps[1].kv != 0.25 || eps[0].kv != 0 || eps[0].inFlight != 0 {
			t.Fatalf("asked %q: %q %+v", asked, name, eps)
		}
	}
	if name, eps := decodeLoads(t, ex.AppendEndpointLoads(nil, []byte("nope")), true); name != "nope" || len(eps) != 0 {
		t.Fatalf("unknown pool: %q %+v", name, eps)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ex.AppendEndpointLoads(make([]byte, 0, 256), []byte("llm")) }); n > 1 {
		t.Errorf("AppendEndpointLoads allocates %v times (the buffer only)", n)
	}
}

// FuzzAppendPoolLoads: any pool name a guest passes gives a well-formed
// answer naming that pool, or the only pool for "", in both forms.
func FuzzAppendPoolLoads(f *testing.F) {
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	srv, err := NewServer(NewConfig().WithUpstream("llm", up.URL), Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	ex := srv.NewExchange()
	f.Add([]byte("llm"))
	f.Add([]byte{})
	f.Add([]byte("\xff\x00llm"))
	f.Fuzz(func(t *testing.T, pool []byte) {
		for _, counted := range []bool{false, true} {
			answer := ex.AppendPoolLoads(nil, pool)
			if counted {
				answer = ex.AppendEndpointLoads(nil, pool)
			}
			name, eps := decodeLoads(t, answer, counted)
			switch {
			case len(pool) == 0 || string(pool) == "llm":
				if name != "llm" || len(eps) != 1 {
					t.Fatalf("pool %q: %q %+v", pool, name, eps)
				}
			case name != string(pool) || len(eps) != 0:
				t.Fatalf("unknown pool %q: %q %+v", pool, name, eps)
			}
		}
	})
}
