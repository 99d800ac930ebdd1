//go:build wasip1

// Command apikey is a Proxy-Wasm plugin that authenticates requests with
// API keys from its configuration, enforces each key's model allow-list and
// sends the key's tenant upstream. See README.md for the configuration.
package main

import (
	"errors"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("apikey", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	policy *policy
	m      apikeyMetrics
}

// apikeyMetrics count requests by outcome:
// sluice_wasm_apikey_requests_total{plugin,result}.
type apikeyMetrics struct {
	accepted, unauthorized, forbidden, invalid, failed guest.Counter
}

func defineMetrics() apikeyMetrics {
	const name = "apikey_requests_total_result="
	return apikeyMetrics{
		accepted:     guest.NewCounter(name + "accepted"),
		unauthorized: guest.NewCounter(name + "unauthorized"),
		forbidden:    guest.NewCounter(name + "model_not_allowed"),
		invalid:      guest.NewCounter(name + "invalid_body"),
		failed:       guest.NewCounter(name + "error"),
	}
}

func (p *plugin) OnPluginStart(size int) bool {
	pol, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.policy = pol
	p.m = defineMetrics()
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext {
	return &stream{policy: p.policy, m: &p.m}
}

// stream is one request. key is set once the key was accepted.
type stream struct {
	sdk.DefaultHttpContext
	policy *policy
	m      *apikeyMetrics
	key    *keyEntry
}

var (
	jsonHeaders = [][2]string{{"content-type", "application/json"}}
	authHeaders = [][2]string{{"content-type", "application/json"}, {"www-authenticate", `Bearer realm="sluice"`}}
	// failClosedBody answers a request the plugin could not check.
	failClosedBody = openai.ErrorBody("The request could not be checked against the API key policy.", "server_error", "", "")
)

func (s *stream) OnHttpRequestHeaders(_ int, eos bool) sdk.Action {
	auth, err1 := header("authorization")
	xkey, err2 := header("x-api-key")
	if err := errors.Join(err1, err2); err != nil {
		sdk.LogErrorf("apikey: cannot read the request headers, denying: %v", err)
		s.m.failed.Inc(1)
		return guest.Reply(500, jsonHeaders, failClosedBody)
	}
	e := s.policy.lookup(presentedKey(auth, xkey))
	if e == nil {
		s.m.unauthorized.Inc(1)
		return guest.Reply(unauthorized.status, authHeaders, unauthorized.body)
	}
	// The key must not reach the upstream, and the tenant header must be
	// ours, not the client's: fail closed if either edit fails.
	err := errors.Join(
		sdk.RemoveHttpRequestHeader("authorization"),
		sdk.RemoveHttpRequestHeader("x-api-key"),
		sdk.SetHttpRequestHeader(s.policy.header, e.tenant))
	if err != nil {
		sdk.LogErrorf("apikey: cannot rewrite the request headers, denying: %v", err)
		s.m.failed.Inc(1)
		return guest.Reply(500, jsonHeaders, failClosedBody)
	}
	s.key = e
	if eos || !e.restricted() {
		s.m.accepted.Inc(1)
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpRequestBody(size int, eos bool) sdk.Action {
	if s.key == nil || !s.key.restricted() {
		return sdk.ActionContinue
	}
	if !eos {
		// A host that streams request bodies buffers them until the end
		// when the filter pauses (Sluice always sends the whole body).
		return sdk.ActionPause
	}
	body, err := sdk.GetHttpRequestBody(0, size)
	if err != nil {
		sdk.LogErrorf("apikey: cannot read the request body, denying: %v", err)
		s.m.failed.Inc(1)
		return guest.Reply(500, jsonHeaders, failClosedBody)
	}
	if r := checkBody(s.key, body); r != nil {
		if r.status == 403 {
			s.m.forbidden.Inc(1)
		} else {
			s.m.invalid.Inc(1)
		}
		return guest.Reply(r.status, jsonHeaders, r.body)
	}
	s.m.accepted.Inc(1)
	return sdk.ActionContinue
}

// header returns a request header's value, "" when it is absent.
func header(name string) (string, error) {
	v, err := sdk.GetHttpRequestHeader(name)
	if errors.Is(err, sdk.ErrNotFound) {
		return "", nil
	}
	return v, err
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
