package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseWrk(t *testing.T) {
	f := func(name string, want WrkResult) {
		t.Helper()
		got, err := ParseWrk(readTestdata(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Fatalf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	f("wrk-basic.txt", WrkResult{
		Requests: 43652, Elapsed: time.Second, RPS: 43515.84,
		P50: 828 * time.Microsecond, P75: 960 * time.Microsecond, P90: 1180 * time.Microsecond, P99: 3800 * time.Microsecond,
	})
	f("wrk-errors.txt", WrkResult{
		Requests: 40321, Elapsed: 2 * time.Second, RPS: 20160.50,
		P50: 11500 * time.Microsecond, P75: 13010 * time.Microsecond, P90: 15220 * time.Microsecond, P99: 1010 * time.Millisecond,
		ConnectErrors: 3, ReadErrors: 12, Timeouts: 7, Non2xx: 150,
	})
	f("wrk-minutes.txt", WrkResult{
		Requests: 7, Elapsed: time.Minute, RPS: 0.12,
		P50: 0, P75: time.Second, P90: 2 * time.Second, P99: time.Minute,
	})
}

func TestWrkResultErrors(t *testing.T) {
	r, err := ParseWrk(readTestdata(t, "wrk-errors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Errors(); got != 3+12+7+150 {
		t.Fatalf("Errors() = %d, want 172", got)
	}
}

func TestParseWrkRejects(t *testing.T) {
	base := readTestdata(t, "wrk-basic.txt")
	f := func(name, text, wantErr string) {
		t.Helper()
		_, err := ParseWrk(text)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%s: error %v, want one containing %q", name, err, wantErr)
		}
		if !strings.HasPrefix(err.Error(), "benchmarks: ") {
			t.Fatalf("%s: error %q lacks the package prefix", name, err)
		}
	}
	f("empty", "", "Requests/sec")
	f("no rate", strings.Replace(base, "Requests/sec:  43515.84", "", 1), "Requests/sec")
	f("no count", strings.Replace(base, "43652 requests in 1.00s, 7.91MB read", "", 1), "requests in")
	f("no latency", strings.Replace(base, "99%    3.80ms", "", 1), "--latency")
	f("bad unit", strings.Replace(base, "3.80ms", "3.80xx", 1), "no unit")
	f("bad number", strings.Replace(base, "3.80ms", "3.8.0ms", 1), "bad time")
	f("negative", strings.Replace(base, "828.00us", "-828.00us", 1), "bad time")
	f("nan rate", strings.Replace(base, "43515.84", "NaN", 1), "bad rate")
	f("inverted", strings.Replace(base, "828.00us", "9.00ms", 1), "above p99")
	f("bad count", strings.Replace(base, "43652 requests", "4x3652 requests", 1), "bad request count")
	f("bad socket", strings.Replace(readTestdata(t, "wrk-errors.txt"), "read 12", "read x", 1), "socket error count")
	f("odd socket", strings.Replace(readTestdata(t, "wrk-errors.txt"), "read 12", "reset 12", 1), "unknown socket error")
	f("bad non2xx", strings.Replace(readTestdata(t, "wrk-errors.txt"), "responses: 150", "responses: -1", 1), "bad count")
	f("huge", strings.Replace(base, "3.80ms", "1e300h", 1), "out of range")
}

func TestParseWrkDuration(t *testing.T) {
	f := func(in string, want time.Duration) {
		t.Helper()
		got, err := parseWrkDuration(in)
		if err != nil || got != want {
			t.Fatalf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	f("290.00us", 290*time.Microsecond)
	f("1.02ms", 1020*time.Microsecond)
	f("2.00s", 2*time.Second)
	f("1.50m", 90*time.Second)
	f("1.00h", time.Hour)
	f("0.00us", 0)
}

func FuzzParseWrk(f *testing.F) {
	for _, n := range []string{"wrk-basic.txt", "wrk-errors.txt", "wrk-minutes.txt"} {
		f.Add(readTestdata(f, n))
	}
	f.Add("Latency Distribution\n 50% 1us\n 99% 1ms\n1 requests in 1s\nRequests/sec: 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseWrk(s)
		if err != nil {
			return
		}
		if r.RPS < 0 || r.Requests < 0 || r.Elapsed < 0 || r.P50 < 0 || r.P50 > r.P99 || r.Errors() < 0 {
			t.Fatalf("accepted impossible result %+v from %q", r, s)
		}
	})
}

// TestRunWrk runs the real wrk for one second against a local server.
func TestRunWrk(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (apt-get install wrk): skipping the live run")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(upstreamBody)
	}))
	defer srv.Close()
	r, line, err := runWrk(context.Background(), nil, 4, time.Second, srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "wrk -t1 -c4 -d1s") {
		t.Fatalf("command line %q", line)
	}
	if r.Requests == 0 || r.RPS <= 0 || r.Errors() != 0 {
		t.Fatalf("implausible result %+v", r)
	}
}

func TestHeadTail(t *testing.T) {
	if got := headTail("abcdefghij", 3, 2); got != "abc … ij" {
		t.Fatalf("got %q", got)
	}
	if got := headTail("abc", 3, 2); got != "abc" {
		t.Fatalf("got %q", got)
	}
	if got := tail("abcdef", 2); got != "…ef" {
		t.Fatalf("tail: %q", got)
	}
}
