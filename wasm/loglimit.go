package wasm

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy"
)

// logSummaryEvery is how often, at most, a plugin's dropped log lines are
// summarised in the log (and once more when the plugin closes).
const logSummaryEvery = 10 * time.Second

// monoStart anchors logLimiter's clock: time.Since on it reads only the
// monotonic clock.
var monoStart = time.Now()

// logLimiter is one plugin's log rate limit (proxy.PluginLogLimit): a
// token bucket kept as GCRA, so a line costs one atomic compare-and-swap
// and no lock, shared by every instance of the plugin. A nil *logLimiter
// allows everything. Dropped lines are counted in dropped (the metric)
// and pending (for the next summary); the first drop after a summary
// arms a timer that logs the next one logSummaryEvery later. Safe for
// concurrent use; close stops the timer and logs what is pending.
type logLimiter struct {
	interval  int64 // ns per line
	tolerance int64 // burst × interval
	tat       atomic.Int64

	log     *slog.Logger
	dropped *metrics.Counter
	pending atomic.Uint64
	armed   atomic.Bool
	every   time.Duration // logSummaryEvery; shorter in tests

	mu     sync.Mutex // guards timer and closed
	timer  *time.Timer
	closed bool
}

// newLogLimiter returns the limiter for cfg (defaults applied), or nil
// when cfg turns the limit off (negative LinesPerSecond).
func newLogLimiter(cfg proxy.PluginLogLimit, log *slog.Logger, dropped *metrics.Counter) *logLimiter {
	rate := cfg.LinesPerSecond
	if rate < 0 {
		return nil
	}
	if rate == 0 {
		rate = proxy.DefaultPluginLogLinesPerSecond
	}
	burst := cfg.Burst
	if burst == 0 {
		burst = proxy.DefaultPluginLogBurst
	}
	interval := max(int64(float64(time.Second)/rate), 1)
	return &logLimiter{interval: interval, tolerance: interval * int64(burst), log: log, dropped: dropped,
		every: logSummaryEvery}
}

// allow takes a token for one line, or counts the line as dropped and
// reports false. It allocates nothing except, at most once per summary
// period, the summary timer.
func (l *logLimiter) allow() bool {
	if l == nil {
		return true
	}
	now := int64(time.Since(monoStart))
	for {
		old := l.tat.Load()
		next := max(old, now) + l.interval
		if next-now > l.tolerance {
			break
		}
		if l.tat.CompareAndSwap(old, next) {
			return true
		}
	}
	l.dropped.Inc()
	l.pending.Add(1)
	if l.armed.CompareAndSwap(false, true) {
		l.mu.Lock()
		if !l.closed {
			l.timer = time.AfterFunc(l.every, l.summarise)
		}
		l.mu.Unlock()
	}
	return false
}

// summarise logs the drops since the last summary.
func (l *logLimiter) summarise() {
	if n := l.pending.Swap(0); n > 0 {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "wasm: plugin log lines dropped by the rate limit",
			slog.Uint64("dropped", n), slog.Duration("period", l.every))
	}
	l.armed.Store(false)
	// A drop between the Swap and the Store found the timer armed: arm it
	// again so that drop is summarised too.
	if l.pending.Load() > 0 && l.armed.CompareAndSwap(false, true) {
		l.mu.Lock()
		if !l.closed {
			l.timer = time.AfterFunc(l.every, l.summarise)
		}
		l.mu.Unlock()
	}
}

// close stops the summary timer and logs the drops not summarised yet.
func (l *logLimiter) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	if n := l.pending.Swap(0); n > 0 {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "wasm: plugin log lines dropped by the rate limit",
			slog.Uint64("dropped", n), slog.String("period", "until close"))
	}
}
