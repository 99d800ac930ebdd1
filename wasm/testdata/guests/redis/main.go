//go:build wasip1

// Command redis is a test guest for the Higress extensions. Its plugin
// configuration is the Redis cluster name, optionally followed by
// ",timeout=MS"; at start it calls proxy_redis_init(cluster, "user",
// "secret", MS) and logs "redis: init err=<err>".
//
// Request headers select what a request does:
//
//	x-redis-incr: KEY      INCR KEY on the cluster (x-redis-cluster
//	                       overrides it); the request pauses until the
//	                       reply, then is answered locally: 200 with the
//	                       new value as body, or 503 with x-redis-status
//	                       and x-redis-message when the call failed, or
//	                       502 with the error reply's text
//	x-redis-raw: QUERY     send QUERY as written (its "\r\n" escapes
//	                       turned into CRLF); the reply is answered as
//	                       above, its raw RESP as body
//	x-pick-endpoint: 1     read proxy_get_upstream_hosts, pick the endpoint
//	                       whose metrics report the fewest
//	                       vllm:num_requests_waiting (the first on ties
//	                       and without metrics) and override the request
//	                       to it; the request goes on with x-picked: ADDR
//	                       and x-hosts: the number of endpoints seen
//	x-override: ADDR       proxy_set_upstream_override_host(ADDR); the
//	                       request goes on with x-override-err: <err>
//	x-inject: 1            proxy_inject_encoded_data_to_filter_chain;
//	                       answered 200 with the error as body
//
// A host call that fails at once is answered 400 with x-redis-error.
package main

import (
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func main() {}

func init() { sdk.SetVMContext(vm{}) }

type vm struct{ sdk.DefaultVMContext }

func (vm) NewPluginContext(uint32) sdk.PluginContext { return &plugin{} }

type plugin struct {
	sdk.DefaultPluginContext
	cluster string
}

func (p *plugin) OnPluginStart(int) bool {
	cfg, _ := sdk.GetPluginConfiguration()
	cluster, opts, _ := strings.Cut(string(cfg), ",")
	p.cluster = cluster
	timeout := uint64(0)
	if v, ok := strings.CutPrefix(opts, "timeout="); ok {
		timeout, _ = strconv.ParseUint(v, 10, 32)
	}
	err := sdk.RedisInit(p.cluster, "user", "secret", uint32(timeout))
	sdk.LogInfof("redis: init err=%v", err)
	return true
}

func (p *plugin) NewHttpContext(id uint32) sdk.HttpContext { return &httpCtx{id: id, p: p} }

type httpCtx struct {
	sdk.DefaultHttpContext
	id uint32
	p  *plugin
}

func header(name string) string {
	v, _ := sdk.GetHttpRequestHeader(name)
	return v
}

func (c *httpCtx) OnHttpRequestHeaders(int, bool) sdk.Action {
	if key := header("x-redis-incr"); key != "" {
		return c.call(sdk.RedisCommand("INCR", key), true)
	}
	if raw := header("x-redis-raw"); raw != "" {
		return c.call([]byte(strings.ReplaceAll(raw, `\r\n`, "\r\n")), false)
	}
	if header("x-pick-endpoint") != "" {
		c.pick()
	}
	if addr := header("x-override"); addr != "" {
		err := sdk.SetUpstreamOverrideHost(addr)
		_ = sdk.SetHttpRequestHeader("x-override-err", errText(err))
	}
	if header("x-inject") != "" {
		err := sdk.InjectEncodedDataToFilterChain([]byte("data"), true)
		_ = sdk.SendHttpResponse(200, nil, []byte(errText(err)), -1)
		return sdk.ActionPause
	}
	return sdk.ActionContinue
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// call sends query and pauses; the reply answers the request. value: the
// body is the integer reply's value, else the raw reply.
func (c *httpCtx) call(query []byte, value bool) sdk.Action {
	cluster := c.p.cluster
	if v := header("x-redis-cluster"); v != "" {
		cluster = v
	}
	_, err := sdk.DispatchRedisCall(cluster, query, func(status, size int) {
		if err := sdk.SetEffectiveContext(c.id); err != nil {
			return
		}
		c.answer(status, size, value)
	})
	if err != nil {
		_ = sdk.SendHttpResponse(400, [][2]string{{"x-redis-error", err.Error()}}, nil, -1)
	}
	return sdk.ActionPause
}

func (c *httpCtx) answer(status, size int, value bool) {
	if status != 0 {
		_, msg, _ := sdk.GetStatus()
		_ = sdk.SendHttpResponse(503, [][2]string{{"x-redis-status", strconv.Itoa(status)}, {"x-redis-message", msg}}, nil, -1)
		return
	}
	reply, err := sdk.GetRedisCallResponse(0, size)
	if err != nil {
		_ = sdk.SendHttpResponse(500, [][2]string{{"x-redis-error", err.Error()}}, nil, -1)
		return
	}
	if !value {
		_ = sdk.SendHttpResponse(200, nil, reply, -1)
		return
	}
	v, _, err := sdk.ParseRESP(reply)
	switch {
	case err != nil:
		_ = sdk.SendHttpResponse(500, [][2]string{{"x-redis-error", err.Error()}}, reply, -1)
	case v.Kind == '-':
		_ = sdk.SendHttpResponse(502, nil, []byte(v.Str), -1)
	default:
		_ = sdk.SendHttpResponse(200, nil, []byte(strconv.FormatInt(v.Int, 10)), -1)
	}
}

// pick overrides the request to the endpoint with the shortest queue.
func (c *httpCtx) pick() {
	hosts, err := sdk.GetUpstreamHosts()
	if err != nil {
		_ = sdk.SetHttpRequestHeader("x-picked", "error: "+err.Error())
		return
	}
	best, bestWaiting := "", -1.0
	for _, h := range hosts {
		w := waiting(h[1])
		if best == "" || w < bestWaiting {
			best, bestWaiting = h[0], w
		}
	}
	if err := sdk.SetUpstreamOverrideHost(best); err != nil {
		best = "error: " + err.Error()
	}
	_ = sdk.SetHttpRequestHeader("x-picked", best)
	_ = sdk.SetHttpRequestHeader("x-hosts", strconv.Itoa(len(hosts)))
}

// waiting sums vllm:num_requests_waiting in a Prometheus text exposition
// (0 when absent).
func waiting(text string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "vllm:num_requests_waiting") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
