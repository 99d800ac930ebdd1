package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis writes its own diagnostics (a refused dial, a pool timeout) to
// stderr in log package format, one line per attempt, which breaks an
// operator's JSON log stream and repeats what the calling plugin is told
// anyway (the call's status) and usually logs itself. Its logger is one
// per process, so the host routes it, once, into the logger of the last
// Host built with Redis entries, at debug level.
var (
	redisLogOnce sync.Once
	redisLogDest atomic.Pointer[slog.Logger]
)

// redisLogger adapts go-redis's logging interface to slog.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLogDest.Load(); l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.LogAttrs(ctx, slog.LevelDebug, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
	}
}

// routeRedisLogs sends go-redis's diagnostics to log from now on.
func routeRedisLogs(log *slog.Logger) {
	redisLogDest.Store(log)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}
