package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/configtest"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func TestClusterStateAdmit(t *testing.T) {
	l := limits{rpm: 3, tpm: 100}
	now := int64(10*time.Minute + 15*time.Second)
	c := clusterState{seenReq: 1}.at(now) // an old window starts empty
	if c.seenReq != 0 || c.win != 10 {
		t.Fatalf("old window kept: %+v", c)
	}
	c.seenReq, c.seenTok = 1, 40 // other replicas' synced use
	c, d := c.admit(now, l, 50, false, 3)
	if !d.allowed || c.pendReq != 1 || c.pendTok != 50 || c.mineReq != 1 || d.st.remReq != 1 || d.st.remTok != 10 ||
		d.st.resetReq != 45*time.Second {
		t.Fatalf("first: %+v %+v", c, d)
	}
	if _, d := c.admit(now, l, 20, false, 3); d.allowed || d.by != "tokens" || d.wait != 45*time.Second {
		t.Fatalf("over the tokens: %+v", d)
	}
	c, d = c.admit(now, l, 0, false, 3)
	if !d.allowed || d.st.remReq != 0 {
		t.Fatalf("last request: %+v", d)
	}
	if _, d := c.admit(now, l, 0, false, 3); d.allowed || d.by != "requests" {
		t.Fatalf("over the requests: %+v", d)
	}
	if _, d := c.admit(now, l, 101, false, 3); d.allowed || !d.tooLarge {
		t.Fatalf("too large: %+v", d)
	}
	// Fallback: the replica's own use against its share (3/3 = 1 request).
	f := clusterState{seenReq: 100}.at(now)
	f.seenReq = 100
	f, d = f.admit(now, l, 10, true, 3)
	if !d.allowed || d.st.remReq != 0 {
		t.Fatalf("fallback first: %+v", d)
	}
	if _, d := f.admit(now, l, 10, true, 3); d.allowed {
		t.Fatalf("fallback past the share: %+v", d)
	}
	if _, d := (clusterState{}).admit(now, l, 50, true, 3); d.allowed || d.tooLarge || d.by != "tokens" {
		t.Fatalf("fallback: a request above the share but within the limit: %+v", d)
	}
	if got, ok := c.charge(now, c.win, -20); !ok || got.pendTok != c.pendTok-20 || got.mineTok != c.mineTok-20 {
		t.Errorf("settle: %+v", got)
	}
	if got, ok := c.charge(now+int64(window), c.win, -20); ok || got != c {
		t.Errorf("a refund crossed into the next window: %+v", got)
	}
	if share(0, 3) != 0 || share(2, 3) != 1 || share(30, 3) != 10 {
		t.Error("share")
	}
}

func TestClusterStateSync(t *testing.T) {
	c := clusterState{win: 7, pendReq: 5, pendTok: 9, seenReq: 2}
	e := syncEntry{key: "k", win: 7, req: 5, tok: 9}
	c.flightReq, c.flightTok, c.pendReq, c.pendTok = 5, 9, 1, 0 // taken, then one more
	if got := c.synced(e, [2]int64{20, 30}); got.flightReq != 0 || got.seenReq != 20 || got.seenTok != 30 || got.pendReq != 1 {
		t.Errorf("synced: %+v", got)
	}
	if got := c.synced(e, [2]int64{1, 1}); got.seenReq != 2 {
		t.Errorf("an older total lowered seen: %+v", got)
	}
	if got := c.failed(e); got.flightReq != 0 || got.pendReq != 6 || got.pendTok != 9 {
		t.Errorf("failed: %+v", got)
	}
	if e.win = 6; c.synced(e, [2]int64{50, 50}) != c || c.failed(e) != c {
		t.Error("a reply for another window changed the state")
	}
	if got, ok := decodeClusterState(c.encode()); !ok || got != c {
		t.Errorf("round trip: %+v %v", got, ok)
	}
	c.listed = true
	if got, ok := decodeClusterState(c.encode()); !ok || got != c {
		t.Errorf("round trip listed: %+v %v", got, ok)
	}
	for _, bad := range [][]byte{nil, make([]byte, clusterStateSize), append([]byte{clusterStateVersion}, make([]byte, clusterStateSize)...)} {
		if _, ok := decodeClusterState(bad); ok {
			t.Errorf("decoded %x", bad)
		}
	}
}

func TestSyncCommandAndReply(t *testing.T) {
	batch := []syncEntry{{key: "ratelimit/rl/k:a b", win: 3, req: 2, tok: -5}, {key: "ratelimit/rl/ip:1.2.3.4", win: 3, req: 1}}
	v, rest, err := sdk.ParseRESP(syncCommand(batch))
	if err != nil || len(rest) != 0 || len(v.Array) != 3+2+1+4 {
		t.Fatalf("command: %+v %v", v, err)
	}
	want := []string{"EVAL", syncScript, "2", "sluice:ratelimit/rl/k:a b:3", "sluice:ratelimit/rl/ip:1.2.3.4:3", "120000", "2", "-5", "1", "0"}
	for i, w := range want {
		if v.Array[i].Str != w {
			t.Errorf("arg %d = %q, want %q", i, v.Array[i].Str, w)
		}
	}
	got, err := parseSyncReply([]byte("*4\r\n:7\r\n:-3\r\n:1\r\n:0\r\n"), 2)
	if err != nil || got[0] != [2]int64{7, -3} || got[1] != [2]int64{1, 0} {
		t.Errorf("reply: %v %v", got, err)
	}
	for reply, want := range map[string]string{
		"-NOSCRIPT x\r\n":                     "redis: NOSCRIPT x",
		"*2\r\n:1\r\n:2\r\n":                  "two integers per key",
		"*4\r\n:1\r\n$1\r\nx\r\n:1\r\n:1\r\n": "non-integer",
		"*4\r\n":                              "malformed",
	} {
		if _, err := parseSyncReply([]byte(reply), 2); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reply %q: %v, want %q", reply, err, want)
		}
	}
}

func TestDirtyList(t *testing.T) {
	l, ok := dirtyAppend(nil, "ratelimit/rl/k:a b")
	l, ok2 := dirtyAppend(l, "ratelimit/rl/ip:::1")
	if !ok || !ok2 {
		t.Fatal("append failed")
	}
	if got := dirtyKeys(l); len(got) != 2 || got[0] != "ratelimit/rl/k:a b" || got[1] != "ratelimit/rl/ip:::1" {
		t.Errorf("keys %q", got)
	}
	if _, ok := dirtyAppend(make([]byte, maxDirtyBytes-2), "abc"); ok {
		t.Error("appended past the bound")
	}
}

func TestParseClusterConfig(t *testing.T) {
	s := configtest.MustParse(t, parseConfig, `{"requests_per_minute": 60}`)
	if s.cluster.on {
		t.Error("cluster scope by default")
	}
	s = configtest.MustParse(t, parseConfig, `{"requests_per_minute": 60, "scope": "cluster"}`)
	if c := s.cluster; !c.on || c.redis != "" || c.interval != DefaultSyncInterval || c.timeout != DefaultRedisTimeout ||
		c.onError != "local" || c.replicas != 1 {
		t.Errorf("cluster defaults: %+v", c)
	}
	s = configtest.MustParse(t, parseConfig, `{"requests_per_minute": 60, "scope": "cluster", "redis": "r", "sync_interval": "50ms",
		"redis_timeout": "1s", "on_cluster_error": "deny", "replicas": 4, "sync": "per_request"}`)
	if c := s.cluster; !c.exact || c.redis != "r" || c.interval != 50*time.Millisecond || c.timeout != time.Second || c.onError != "deny" || c.replicas != 4 {
		t.Errorf("cluster explicit: %+v", c)
	}
	for _, c := range []struct{ in, want string }{
		{`"scope": "global"`, `ratelimit: scope: "global" is not "local" or "cluster"`},
		{`"replicas": 3`, `need "scope": "cluster"`},
		{`"scope": "cluster", "sync_interval": "5ms"`, `ratelimit: sync_interval: "5ms" is not a duration in 10ms..10s`},
		{`"scope": "cluster", "redis_timeout": "x"`, `ratelimit: redis_timeout: "x" is not a duration`},
		{`"scope": "cluster", "on_cluster_error": "panic"`, `ratelimit: on_cluster_error: "panic" is not`},
		{`"scope": "cluster", "sync": "always"`, `ratelimit: sync: "always" is not "interval" or "per_request"`},
		{`"scope": "cluster", "replicas": -1`, `ratelimit: replicas: -1 is not in 1..10000`},
	} {
		_, err := parseConfig([]byte(`{"requests_per_minute": 1, ` + c.in + `}`))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzDecodeClusterState(f *testing.F) {
	f.Add(clusterState{win: 1, seenReq: 2, listed: true}.encode())
	f.Add([]byte{clusterStateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, ok := decodeClusterState(b); ok {
			if got, ok := decodeClusterState(c.encode()); !ok || got != c {
				t.Fatalf("round trip %+v", c)
			}
		}
	})
}

func FuzzParseSyncReply(f *testing.F) {
	f.Add([]byte("*2\r\n:1\r\n:2\r\n"), 1)
	f.Add([]byte("-ERR x\r\n"), 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		if got, err := parseSyncReply(b, n); err == nil && len(got) != n {
			t.Fatalf("%d totals for %d keys", len(got), n)
		}
	})
}

func TestCheckCommandAndReply(t *testing.T) {
	v, _, err := sdk.ParseRESP(checkCommand("ratelimit/rl/k:a", 4, limits{rpm: 10, tpm: 100}, 7))
	want := []string{"EVAL", checkScript, "1", "sluice:ratelimit/rl/k:a:4", "10", "100", "7", "120000"}
	if err != nil || len(v.Array) != len(want) {
		t.Fatalf("command %+v %v", v, err)
	}
	for i, w := range want {
		if v.Array[i].Str != w {
			t.Errorf("arg %d = %q, want %q", i, v.Array[i].Str, w)
		}
	}
	ok, total, err := parseCheckReply([]byte("*3\r\n:1\r\n:4\r\n:70\r\n"))
	if !ok || total != [2]int64{4, 70} || err != nil {
		t.Errorf("reply: %v %v %v", ok, total, err)
	}
	for _, bad := range []string{"-ERR x\r\n", "*3\r\n:2\r\n:4\r\n:70\r\n", "*2\r\n:1\r\n:4\r\n", ":1\r\n", ""} {
		if _, _, err := parseCheckReply([]byte(bad)); err == nil {
			t.Errorf("reply %q accepted", bad)
		}
	}
	now := int64(4*time.Minute + 30*time.Second)
	l := limits{rpm: 10}
	c, d := clusterState{}.checked(now, l, 0, true, [2]int64{4, 0})
	if !d.allowed || d.st.remReq != 6 || c.mineReq != 1 || c.seenReq != 4 {
		t.Errorf("admitted: %+v %+v", c, d)
	}
	c, d = c.checked(now, l, 0, false, [2]int64{10, 0})
	if d.allowed || d.by != "requests" || d.wait != 30*time.Second || c.mineReq != 1 || c.seenReq != 10 {
		t.Errorf("refused: %+v %+v", c, d)
	}
}

func FuzzParseCheckReply(f *testing.F) {
	f.Add([]byte("*3\r\n:1\r\n:4\r\n:70\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _ = parseCheckReply(b) })
}
