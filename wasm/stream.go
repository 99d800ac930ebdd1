package wasm

import (
	"fmt"

	"github.com/sluice-proxy/sluice/proxy"
)

// stream is one request's HTTP context on one instance: the proxy.Stream a
// Plugin hands out. Streams are pooled; the proxy calls one method at a
// time, and OnDone exactly once, after which the stream is reused.
type stream struct {
	p    *Plugin
	inst *instance
	slot *slot
	ex   *proxy.Exchange
	id   uint32

	// Guarded by inst.mu (read by host functions).
	phase        callback // the last callback run on this context
	responseSeen bool     // OnResponseHeaders was called
	// awaiting is set when the last phase callback returned PAUSE in a
	// phase where the proxy waits (request headers and body, response
	// headers), until the plugin resumes, answers or closes the request.
	// A reply to an HTTP call from this context is held back while the
	// proxy has not started waiting yet (see instance.deliverCallout).
	awaiting bool
	resolved bool // continue/close/local response during the callback
	// stranded: the request needed the guest after its instance was
	// discarded, and was counted in sluice_plugin_stranded_requests_total.
	stranded bool
}

func (s *stream) OnRequestHeaders(eos bool) (proxy.Action, error) {
	return s.run(cbRequestHeaders, uint64(s.ex.RequestHeaders().Len()), eos)
}

func (s *stream) OnRequestBody(eos bool) (proxy.Action, error) {
	return s.run(cbRequestBody, uint64(len(s.ex.RequestBody())), eos)
}

func (s *stream) OnResponseHeaders(eos bool) (proxy.Action, error) {
	return s.run(cbResponseHeaders, uint64(s.ex.ResponseHeaders().Len()), eos)
}

func (s *stream) OnResponseBody(eos bool) (proxy.Action, error) {
	return s.run(cbResponseBody, uint64(len(s.ex.ResponseBody())), eos)
}

// run calls one phase callback and decodes its action.
func (s *stream) run(cb callback, size uint64, eos bool) (proxy.Action, error) {
	in := s.inst
	in.mu.Lock()
	if cb == cbResponseHeaders {
		s.responseSeen = true
	}
	if in.fns[cb] == nil {
		// Nothing to call: a request past the guest's last exported
		// callback needs nothing more from the instance, dead or not.
		in.mu.Unlock()
		return proxy.ActionContinue, nil
	}
	if in.dead.Load() {
		// Stranded: in flight on an instance discarded after another
		// request's failure (or a closed plugin), and still needing it.
		in.stranded(s)
		in.mu.Unlock()
		return proxy.ActionContinue, &CallError{Plugin: s.p.name, Callback: cb.String(), Kind: KindUnavailable, Err: ErrInstanceDiscarded}
	}
	var e uint64
	if eos {
		e = 1
	}
	s.awaiting, s.resolved = false, false
	res, err := in.call(cb, s, uint64(s.id), size, e, s.p.callTimeout)
	a := uint32(res)
	if err == nil && a != actionContinue && a <= actionMaxPause && cb != cbResponseBody && !s.resolved {
		s.awaiting = true
	}
	in.mu.Unlock()
	if err != nil {
		return proxy.ActionContinue, err
	}
	switch {
	case a == actionContinue:
		return proxy.ActionContinue, nil
	case a <= actionMaxPause:
		return proxy.ActionPause, nil
	default:
		s.p.metrics.errorsOf(KindBadAction).Inc()
		return proxy.ActionContinue, &CallError{Plugin: s.p.name, Callback: cb.String(), Kind: KindBadAction,
			Err: fmt.Errorf("returned action %d (want 0 CONTINUE or 1 PAUSE)", a)}
	}
}

// OnDone ends the HTTP context: proxy_on_log, proxy_on_done and
// proxy_on_delete, unless the instance was discarded. HTTP calls the
// context made that are still in flight are cancelled (their callbacks
// still come, as failures, on the root context). The stream goes back to
// the pool.
func (s *stream) OnDone() {
	in := s.inst
	in.mu.Lock()
	delete(in.streams, s.id)
	for _, c := range in.callouts {
		if c.streamID == s.id {
			c.cancel()
		}
	}
	args := [5]uint64{uint64(s.id)}
	t := monoNow()
	for _, cb := range [...]callback{cbLog, cbDone, cbDelete} {
		if in.dead.Load() {
			break
		}
		var err error
		if _, t, err = in.callAt(cb, s, args, s.p.callTimeout, t); err != nil {
			s.p.log.Warn("wasm: plugin failed while finishing a request", "error", err)
			break
		}
	}
	in.mu.Unlock()
	s.release()
}

// release unpins the stream and returns it to the pool.
func (s *stream) release() {
	s.slot.pinned.Add(-1)
	p := s.p
	*s = stream{}
	p.pool.Put(s)
}

var _ proxy.Stream = (*stream)(nil)
