package wasm

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

func TestNewRedisClients(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := NewRedisClients([]proxy.RedisConfig{
		{Name: "a", Address: "127.0.0.1:6379", PasswordFile: pw, Username: "u", DB: 3},
		{Name: "b", Address: "127.0.0.1:6380", Timeout: proxy.Duration(250 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	a := rc.lookup("outbound|6379||a")
	if a == nil || a.rdb.Options().Password != "s3cret" || a.rdb.Options().Username != "u" || a.rdb.Options().DB != 3 || a.timeout != time.Second {
		t.Fatalf("entry a: %+v", a)
	}
	if b := rc.lookup("b"); b == nil || b.timeout != 250*time.Millisecond || b.rdb.Options().MaxRetries > 0 {
		t.Fatalf("entry b: %+v", b)
	}
	if rc.lookup("c") != nil || rc.lookup("outbound|6379||c") != nil {
		t.Fatal("an unknown cluster resolved")
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	for _, tc := range []struct {
		list []proxy.RedisConfig
		want string
	}{
		{[]proxy.RedisConfig{{Name: "a", Address: "nohost"}}, "redis[0].address"},
		{[]proxy.RedisConfig{{Name: "a", Address: "h:1"}, {Name: "a", Address: "h:2"}}, "redis[1].name"},
		{[]proxy.RedisConfig{{Name: "a", Address: "h:1", PasswordFile: filepath.Join(t.TempDir(), "missing")}}, `redis "a": password_file`},
	} {
		if _, err := NewRedisClients(tc.list); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRedisClients(%+v) = %v, want an error naming %s", tc.list, err, tc.want)
		}
	}
	// NewHost reports it too, and builds nothing.
	_, err = NewHost(t.Context(), HostConfig{CacheDir: InMemoryCache, Redis: []proxy.RedisConfig{{Name: "a", Address: "h:0"}}})
	if err == nil || !strings.Contains(err.Error(), "redis[0].address") {
		t.Fatalf("NewHost = %v, want an error naming redis[0].address", err)
	}
}

// TestRedisClientLogsGoToTheHostLogger: go-redis's own diagnostics (here
// a refused dial) reach the Host's logger at debug level instead of
// being printed to stderr in another format.
func TestRedisClientLogsGoToTheHostLogger(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: dials are refused
	var buf logBuffer
	h, err := NewHost(t.Context(), HostConfig{CacheDir: InMemoryCache,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Redis:  []proxy.RedisConfig{{Name: "r", Address: addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	if _, st, _ := h.redis.lookup("r").do(t.Context(), []any{"PING"}); st != redisStatusFailed {
		t.Fatalf("PING to a closed port: status %d, want failed", st)
	}
	if got := buf.String(); !strings.Contains(got, "level=DEBUG msg=\"redis client\"") || !strings.Contains(got, "refused") {
		t.Fatalf("host log after a refused dial:\n%s", got)
	}
}
