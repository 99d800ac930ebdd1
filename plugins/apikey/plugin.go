//go:build wasip1

// Command apikey is a Proxy-Wasm plugin that authenticates requests with
// API keys from its configuration, enforces each key's model allow-list and
// sends the key's tenant upstream. See README.md for the configuration.
package main

import (
	"errors"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { sdk.SetVMContext(vm{}) }

type vm struct{ sdk.DefaultVMContext }

func (vm) NewPluginContext(uint32) sdk.PluginContext { return &plugin{} }

type plugin struct {
	sdk.DefaultPluginContext
	policy *policy
	m      apikeyMetrics
}

// apikeyMetrics count requests by outcome:
// sluice_wasm_apikey_requests_total{plugin,result}.
type apikeyMetrics struct {
	accepted, unauthorized, forbidden, invalid, failed counter
}

func defineMetrics() apikeyMetrics {
	const name = "apikey_requests_total_result="
	return apikeyMetrics{
		accepted:     defineCounter(name + "accepted"),
		unauthorized: defineCounter(name + "unauthorized"),
		forbidden:    defineCounter(name + "model_not_allowed"),
		invalid:      defineCounter(name + "invalid_body"),
		failed:       defineCounter(name + "error"),
	}
}

func (p *plugin) OnPluginStart(size int) bool {
	var data []byte
	if size > 0 {
		var err error
		data, err = sdk.GetPluginConfiguration()
		if err != nil {
			sdk.LogCriticalf("apikey: cannot read the plugin configuration: %v", err)
			return false
		}
	}
	pol, err := parseConfig(data)
	if err != nil {
		sdk.LogCritical(err.Error())
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
	failClosedBody = errorBody("The request could not be checked against the API key policy.", "server_error", "", "")
)

func (s *stream) OnHttpRequestHeaders(_ int, eos bool) sdk.Action {
	auth, err1 := header("authorization")
	xkey, err2 := header("x-api-key")
	if err := errors.Join(err1, err2); err != nil {
		sdk.LogErrorf("apikey: cannot read the request headers, denying: %v", err)
		s.m.failed.inc(1)
		return reply(500, jsonHeaders, failClosedBody)
	}
	e := s.policy.lookup(presentedKey(auth, xkey))
	if e == nil {
		s.m.unauthorized.inc(1)
		return reply(unauthorized.status, authHeaders, unauthorized.body)
	}
	// The key must not reach the upstream, and the tenant header must be
	// ours, not the client's: fail closed if either edit fails.
	err := errors.Join(
		sdk.RemoveHttpRequestHeader("authorization"),
		sdk.RemoveHttpRequestHeader("x-api-key"),
		sdk.SetHttpRequestHeader(s.policy.header, e.tenant))
	if err != nil {
		sdk.LogErrorf("apikey: cannot rewrite the request headers, denying: %v", err)
		s.m.failed.inc(1)
		return reply(500, jsonHeaders, failClosedBody)
	}
	s.key = e
	if eos || !e.restricted() {
		s.m.accepted.inc(1)
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
		s.m.failed.inc(1)
		return reply(500, jsonHeaders, failClosedBody)
	}
	if r := checkBody(s.key, body); r != nil {
		if r.status == 403 {
			s.m.forbidden.inc(1)
		} else {
			s.m.invalid.inc(1)
		}
		return reply(r.status, jsonHeaders, r.body)
	}
	s.m.accepted.inc(1)
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

// reply sends a local response and pauses the stream. If the host refuses
// the local response, the request is reset rather than let through.
func reply(status uint32, headers [][2]string, body []byte) sdk.Action {
	if err := sdk.SendHttpResponse(status, headers, body, -1); err != nil {
		sdk.LogErrorf("apikey: sending the %d reply failed, closing the request: %v", status, err)
		if err := sdk.CloseStream(sdk.StreamHttpRequest); err != nil {
			sdk.LogErrorf("apikey: closing the request failed: %v", err)
		}
	}
	return sdk.ActionPause
}

var (
	_ sdk.VMContext     = vm{}
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
