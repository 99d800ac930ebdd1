package wasm

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tetratelabs/wazero/api"
)

// The Higress Redis extension:
//
//	proxy_redis_init(cluster, username, password, timeout_ms)
//	proxy_redis_call(cluster, query, ret_callout_id)
//	proxy_on_redis_call_response(plugin_context_id, callout_id, status, size)
//
// A call runs like an HTTP callout (callout.go, same table, same
// delivery): the command goes to the server's pool on a goroutine, the
// request that made it stays paused, and the reply comes back on the root
// context of the calling instance, where buffer 9 holds it and the plugin
// resumes the request with proxy_continue_stream.

// Redis call results: the "result" label of sluice_plugin_redis_calls_total.
var redisResults = [...]string{"ok", "failed", "timeout", "cancelled"}

const (
	redisResultOK = iota
	redisResultFailed
	redisResultTimeout
	redisResultCancelled
)

// redisState is a plugin's Redis settings and metrics. Instances of a
// plugin share it: they run the same configuration, so the timeout one
// asks for in proxy_redis_init holds for all. Safe for concurrent use.
type redisState struct {
	timeouts sync.Map // cluster name → time.Duration asked in proxy_redis_init
	calls    [len(redisResults)]*metrics.Counter
}

// init creates sluice_plugin_redis_calls_total{plugin,result} in set.
func (r *redisState) init(set *metrics.Set, plugin string) {
	l := `plugin="` + escapeLabel(plugin) + `"`
	for i, res := range redisResults {
		r.calls[i] = set.GetOrCreateCounter(`sluice_plugin_redis_calls_total{` + l + `,result="` + res + `"}`)
	}
}

// onInstance makes a host function of f, a method that serves the call
// on the calling instance and returns its status (the host functions of
// the Higress extensions are written so).
func onInstance(f func(*instance, context.Context, api.Module, []uint64) status) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		if in := callerOf(ctx, stack); in != nil {
			stack[0] = uint64(f(in, ctx, mod, stack))
		}
	}
}

// redisInit implements proxy_redis_init(cluster, username, password,
// timeout_ms). The cluster must name a configured Redis (BAD_ARGUMENT
// otherwise). The credentials are read (a bad pointer is
// INVALID_MEMORY_ACCESS) but not used: the configuration's are. A
// timeout above the configured one is lowered to it; 0 keeps it.
func (in *instance) redisInit(_ context.Context, mod api.Module, stack []uint64) status {
	a := in.args(mod, stack)
	_, _ = a.bytes(2), a.bytes(4) // the credentials: checked, not used
	c, st := in.redisCluster("proxy_redis_init", &a)
	if st != statusOK {
		return st
	}
	timeout := time.Duration(u32(stack[6])) * time.Millisecond
	if timeout == 0 || timeout > c.timeout {
		timeout = c.timeout
	}
	in.p.redis.timeouts.Store(c.name, timeout)
	return statusOK
}

// redisCluster reads the cluster name of a Redis call fn (arguments 0
// and 1) and returns the configured Redis it names, once every argument a
// has read is in bounds. Its status is INVALID_MEMORY_ACCESS for an
// argument out of bounds, BAD_ARGUMENT (logged at debug level) for a
// name no redis entry has.
func (in *instance) redisCluster(fn string, a *hostArgs) (*redisClient, status) {
	cluster := a.bytes(0)
	if !a.ok {
		return nil, statusInvalidMemoryAccess
	}
	c := in.p.host.redis.lookup(string(cluster))
	if c == nil {
		in.p.log.Debug("wasm: "+fn+": no redis entry for the cluster", "cluster", string(cluster))
		return nil, statusBadArgument
	}
	return c, statusOK
}

// redisCall implements proxy_redis_call(cluster, query, ret_callout_id).
// in.mu must be held. The query must be one command as a RESP array of
// bulk strings, not one of the connection-state commands
// (redisCommandRefused); either fault is BAD_ARGUMENT. A call to a
// configured Redis that proxy_redis_init did not set up uses the
// configured timeout.
func (in *instance) redisCall(_ context.Context, mod api.Module, stack []uint64) status {
	a := in.args(mod, stack)
	query, retID := a.bytes(2), a.retU32(4)
	c, st := in.redisCluster("proxy_redis_call", &a)
	if st != statusOK {
		return st
	}
	args, err := parseRESPCommand(query)
	if err != nil {
		in.p.log.Debug("wasm: proxy_redis_call: malformed query", "error", err)
		return statusBadArgument
	}
	if why := refusedCommand(args[0].([]byte)); why != "" {
		in.p.log.Debug("wasm: proxy_redis_call: command refused", "command", string(args[0].([]byte)), "reason", why)
		return statusBadArgument
	}
	if len(in.callouts) >= maxCalloutsPerInstance {
		return statusInternalFailure
	}
	timeout := c.timeout
	if t, ok := in.p.redis.timeouts.Load(c.name); ok {
		timeout = t.(time.Duration)
	}
	co := &callout{redis: true}
	return in.startCall(a.mem, retID, co, timeout, func(ctx context.Context) { in.runRedisCall(ctx, co, c, args) })
}

// runRedisCall is the goroutine of one Redis call: it sends the command,
// then delivers the reply (or the failure) to the instance. It returns as
// soon as ctx ends (the timeout, or the plugin closing): go-redis bounds a
// read by the context's deadline but does not watch its cancellation, so
// the command runs on its own goroutine, which finishes by itself within
// the timeout (its connection's deadline) or when the pools close.
func (in *instance) runRedisCall(ctx context.Context, co *callout, c *redisClient, args []any) {
	type answer struct {
		reply []byte
		st    uint32
		msg   string
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.reply, a.st, a.msg = c.do(ctx, args)
		done <- a
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.st = redisStatusFailed
	}
	reply, st, msg := a.reply, a.st, a.msg
	result := redisResultOK
	switch {
	case st == redisStatusOK:
	case errors.Is(ctx.Err(), context.Canceled):
		result, msg = redisResultCancelled, "cancelled"
	case st == redisStatusTimeout || errors.Is(ctx.Err(), context.DeadlineExceeded):
		result, st, msg = redisResultTimeout, redisStatusTimeout, "timeout"
	default:
		result = redisResultFailed
	}
	co.cancel()
	if len(msg) > maxStatusMessage {
		msg = msg[:maxStatusMessage]
	}
	co.body, co.code, co.message = reply, st, []byte(msg)
	in.p.redis.calls[result].Inc()
	if result != redisResultOK && result != redisResultCancelled {
		in.p.log.Debug("wasm: redis call failed", "redis", c.name, "error", msg)
	}
	in.deliverCallout(co)
}
