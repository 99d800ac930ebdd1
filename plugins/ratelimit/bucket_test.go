package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

const t0 = int64(1_700_000_000) * int64(time.Second)

func TestAdmitRequests(t *testing.T) {
	l := limits{rpm: 3}
	b := newBucket(t0, l)
	var d decision
	for i := range 3 {
		b, d = b.admit(t0, l, 0)
		if !d.allowed || d.st.remReq != int64(2-i) {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	b, d = b.admit(t0, l, 0)
	if d.allowed || d.by != "requests" || d.wait != 20*time.Second {
		t.Fatalf("4th request: %+v, want refused for 20s (one request refills every 20s)", d)
	}
	if d.st.resetReq != time.Minute {
		t.Errorf("reset %v, want 1m (empty bucket)", d.st.resetReq)
	}
	// 10s later half a request has refilled: still refused, 10s to wait.
	_, d = b.admit(t0+int64(10*time.Second), l, 0)
	if d.allowed || d.wait != 10*time.Second {
		t.Fatalf("after 10s: %+v", d)
	}
	b, d = b.admit(t0+int64(20*time.Second), l, 0)
	if !d.allowed || d.st.remReq != 0 {
		t.Fatalf("after 20s: %+v", d)
	}
	// A long pause refills only up to the limit.
	b = b.refill(t0+int64(time.Hour), l)
	if b.req != 3 {
		t.Errorf("after an hour %v requests, want the limit 3", b.req)
	}
	// A clock that goes backwards refills nothing and does not panic.
	if c := b.refill(t0, l); c != b {
		t.Errorf("backwards refill changed %+v to %+v", b, c)
	}
}

func TestAdmitTokens(t *testing.T) {
	l := limits{rpm: 100, tpm: 1000}
	b := newBucket(t0, l)
	b, d := b.admit(t0, l, 600)
	if !d.allowed || d.st.remTok != 400 || d.st.remReq != 99 {
		t.Fatalf("first: %+v", d)
	}
	if d.st.resetTok != 36*time.Second {
		t.Errorf("token reset %v, want 36s (600 of 1000/min)", d.st.resetTok)
	}
	_, d = b.admit(t0, l, 500)
	if d.allowed || d.by != "tokens" || d.wait != 6*time.Second {
		t.Fatalf("second: %+v, want refused on tokens for 6s", d)
	}
	// A request without tokens is admitted despite the token shortage.
	b, d = b.admit(t0, l, 0)
	if !d.allowed {
		t.Fatalf("cost 0: %+v", d)
	}
	// More than the limit can never be admitted.
	_, d = newBucket(t0, l).admit(t0, l, 1001)
	if d.allowed || !d.tooLarge || d.by != "tokens" {
		t.Fatalf("too large: %+v", d)
	}
	// Settling: a response that used 900 tokens for a 600 charge leaves a
	// debt; a refund gives tokens back, never above the limit.
	b = b.charge(t0, l, 300) // 400 - 300 = 100
	if b.tok != 100 {
		t.Fatalf("after charge %v tokens, want 100", b.tok)
	}
	b = b.charge(t0, l, 500)
	if b.tok != -400 || b.status(l).remTok != 0 {
		t.Fatalf("debt: %v tokens, status %+v", b.tok, b.status(l))
	}
	_, d = b.admit(t0, l, 1)
	if d.allowed || d.wait != time.Duration(math.Ceil(401.0*60/1000*1000))*time.Millisecond {
		t.Fatalf("in debt: %+v", d)
	}
	b = b.charge(t0, l, -5000)
	if b.tok != 1000 {
		t.Errorf("refund filled to %v, want the limit", b.tok)
	}
	// Unlimited dimensions never refuse.
	u := limits{}
	if _, d := newBucket(t0, u).admit(t0, u, 1<<40); !d.allowed {
		t.Errorf("unlimited refused: %+v", d)
	}
}

func TestBucketEncoding(t *testing.T) {
	b := bucket{at: t0, req: 2.5, tok: -17.25}
	got, ok := decodeBucket(b.encode())
	if !ok || got != b {
		t.Fatalf("round trip %+v → %+v %v", b, got, ok)
	}
	for _, bad := range [][]byte{nil, []byte("x"), append([]byte{2}, b.encode()[1:]...),
		bucket{req: math.NaN()}.encode(), bucket{tok: math.Inf(1)}.encode()} {
		if _, ok := decodeBucket(bad); ok {
			t.Errorf("decodeBucket(%x) accepted it", bad)
		}
	}
}

func TestFormatReset(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {time.Nanosecond, "1ms"}, {20 * time.Millisecond, "20ms"},
		{999*time.Millisecond + 1, "1s"}, {time.Second, "1s"}, {8640 * time.Millisecond, "8.64s"},
		{8641 * time.Millisecond, "8.65s"}, {6 * time.Minute, "6m0s"}, {90 * time.Second, "1m30s"},
	} {
		if got := formatReset(c.d); got != c.want {
			t.Errorf("formatReset(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestRateHeaders(t *testing.T) {
	st := status{remReq: 59, remTok: 39000, resetReq: time.Second, resetTok: 1500 * time.Millisecond}
	got := rateHeaders(limits{rpm: 60, tpm: 40000}, st)
	want := [][2]string{
		{"x-ratelimit-limit-requests", "60"}, {"x-ratelimit-remaining-requests", "59"}, {"x-ratelimit-reset-requests", "1s"},
		{"x-ratelimit-limit-tokens", "40000"}, {"x-ratelimit-remaining-tokens", "39000"}, {"x-ratelimit-reset-tokens", "1.5s"},
	}
	if len(got) != len(want) {
		t.Fatalf("headers %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("header %d = %q, want %q", i, got[i], want[i])
		}
	}
	if h := rateHeaders(limits{rpm: 1}, st); len(h) != 3 {
		t.Errorf("requests-only headers %q", h)
	}
}

func TestRejection(t *testing.T) {
	l := limits{rpm: 60, tpm: 1000}
	header := func(h [][2]string, name string) string {
		for _, kv := range h {
			if kv[0] == name {
				return kv[1]
			}
		}
		return ""
	}
	_, d := bucket{at: t0, req: 0.5, tok: 1000}.admit(t0, l, 10)
	h, body := rejection(l, d)
	if header(h, "retry-after") != "1" || header(h, "retry-after-ms") != "500" || header(h, "x-ratelimit-remaining-requests") != "0" {
		t.Errorf("headers %q", h)
	}
	var env struct {
		Error struct {
			Message, Type string
			Param, Code   *string
		}
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Error.Type != "requests" || env.Error.Code == nil || *env.Error.Code != "rate_limit_exceeded" || env.Error.Param != nil ||
		!strings.Contains(env.Error.Message, "requests per min (RPM): Limit 60") || !strings.Contains(env.Error.Message, "try again in 500ms") {
		t.Errorf("body %s", body)
	}
	_, d = newBucket(t0, l).admit(t0, l, 5000)
	h, body = rejection(l, d)
	if header(h, "x-should-retry") != "false" || header(h, "retry-after") != "" || !strings.Contains(string(body), `"type":"tokens"`) ||
		!strings.Contains(string(body), "Request too large") {
		t.Errorf("too large: %q %s", h, body)
	}
	_, d = bucket{at: t0, req: 60, tok: 100}.admit(t0, l, 400)
	h, body = rejection(l, d)
	if header(h, "retry-after") != "18" || !strings.Contains(string(body), "tokens per min (TPM): Limit 1000, Remaining 100, Requested 400") {
		t.Errorf("tokens: %q %s", h, body)
	}
}

// FuzzBucket checks the invariants of admission and settling on arbitrary
// stored states, times and costs: levels never exceed the limits, nothing
// is NaN, an admitted request takes exactly what it asked for, and a
// refusal names a positive wait unless it can never fit.
func FuzzBucket(f *testing.F) {
	f.Add(bucket{at: t0, req: 1, tok: 10}.encode(), int64(5), int64(10), int64(60), int64(100), int64(-3))
	f.Add([]byte{}, int64(0), int64(0), int64(1), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, stored []byte, dt, cost, rpm, tpm, delta int64) {
		l := limits{rpm: clampLimit(rpm), tpm: clampLimit(tpm)}
		cost = max(0, min(cost, maxLimit))
		delta = max(-maxLimit, min(delta, maxLimit))
		b, ok := decodeBucket(stored)
		if !ok {
			b = newBucket(t0, l)
		}
		now := b.at + dt%int64(24*time.Hour)
		before := b.refill(now, l)
		nb, d := b.admit(now, l, cost)
		check := func(what string, x bucket) {
			if math.IsNaN(x.req) || math.IsNaN(x.tok) || (l.rpm > 0 && x.req > float64(l.rpm)) || (l.tpm > 0 && x.tok > float64(l.tpm)) {
				t.Fatalf("%s: %+v exceeds %+v", what, x, l)
			}
		}
		check("admit", nb)
		switch {
		case d.allowed:
			if l.rpm > 0 && nb.req != before.req-1 || l.tpm > 0 && nb.tok != before.tok-float64(cost) {
				t.Fatalf("admitted %d: %+v → %+v", cost, before, nb)
			}
		case d.tooLarge:
			if l.tpm == 0 || cost <= l.tpm {
				t.Fatalf("too large with cost %d and %+v", cost, l)
			}
		default:
			if d.wait <= 0 || nb != before {
				t.Fatalf("refused with wait %v, bucket %+v → %+v", d.wait, before, nb)
			}
		}
		check("charge", nb.charge(now, l, delta))
		if got, ok := decodeBucket(nb.encode()); !ok || got != nb {
			t.Fatalf("round trip %+v → %+v", nb, got)
		}
	})
}

func clampLimit(v int64) int64 { return max(0, min(v, maxLimit)) }
