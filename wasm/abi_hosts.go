package wasm

import (
	"context"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero/api"
)

// The Higress extensions on the request's upstream:
//
//	proxy_get_upstream_hosts(ret_data, ret_size)
//	proxy_set_upstream_override_host(address, address_size)
//	proxy_inject_encoded_data_to_filter_chain(data, data_size, end_of_stream)
//
// They act on the effective HTTP context; from the root context there is
// no request (NOT_FOUND, BAD_ARGUMENT).

// upstreamHosts implements proxy_get_upstream_hosts: the endpoints of the
// request's pool as pairs (the Proxy-Wasm map format), each endpoint's
// "host:port" and its engine's last scraped Prometheus text, or ""
// (proxy.Exchange.UpstreamHosts). NOT_FOUND from the root context or when
// no pool would take the request.
func (in *instance) upstreamHosts(ctx context.Context, mod api.Module, stack []uint64) status {
	a := in.args(mod, stack)
	retPtr, retSize := a.retPair(0)
	if !a.ok {
		return statusInvalidMemoryAccess
	}
	var hosts proxy.Headers
	if in.eff == nil || !in.eff.ex.UpstreamHosts(&hosts) {
		return statusNotFound
	}
	return in.returnPairs(ctx, mod, &hosts, retPtr, retSize)
}

// overrideHost implements proxy_set_upstream_override_host: the request
// goes to one endpoint, as when sluice.endpoint is set, with the same
// checks: the address must be the host:port of an endpoint of the
// request's pool (or of one pool), and the request must still be in its
// request phase; otherwise BAD_ARGUMENT, and nothing changes.
func (in *instance) overrideHost(_ context.Context, mod api.Module, stack []uint64) status {
	a := in.args(mod, stack)
	addr := a.bytes(0)
	switch {
	case !a.ok:
		return statusInvalidMemoryAccess
	case in.eff == nil || len(addr) == 0:
		return statusBadArgument
	}
	return in.p.setProperty(in.eff, propEndpoint, nil, addr)
}

// hostInjectEncodedData is UNIMPLEMENTED: Sluice's filter chain hands each
// filter the whole body or one chunk of it in place, and has no way to
// push extra data into the stream from a plugin (Envoy's
// injectEncodedDataToFilterChain re-enters the encoder chain). A plugin
// that needs it rewrites the body with proxy_set_buffer_bytes.
func hostInjectEncodedData(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(statusUnimplemented)
}
