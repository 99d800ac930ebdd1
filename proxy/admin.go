package proxy

import (
	"net/http"
)

// The admin listener (config admin: {hostname, port}). When it is
// configured, /metrics is served there only: the client-facing port
// answers /metrics with 404, so an internet-facing port does not publish
// upstream addresses (sluice_endpoint_* labels), model names and plugin
// internals. /health and /ready answer on both ports, so probes may use
// either. The listener itself is net/http, not fasthttp: it serves a
// scraper and probes, never the request path, and the profiles of
// net/http/pprof can be mounted beside it.

// AdminHandler returns the admin listener's handler: GET /health,
// /ready and, unless enable_metrics is false, /metrics, answered as on
// the main port; other paths get 404. Mount it at "/" of a mux to add
// more (cmd/sluice adds /debug/pprof/ there). It is safe for concurrent
// use and valid for the Server's lifetime.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		s.writeAdminHealth(w, http.StatusOK)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		status := http.StatusOK
		if !s.router.IsReady() {
			status = http.StatusServiceUnavailable
		}
		s.writeAdminHealth(w, status)
	})
	if s.cfg.EnableMetrics {
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", string(strContentTypeText))
			s.WriteMetrics(w)
		})
	}
	return mux
}

func (s *Server) writeAdminHealth(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", string(strApplicationJSON))
	w.WriteHeader(status)
	_, _ = w.Write(s.appendHealthJSON(nil))
}
