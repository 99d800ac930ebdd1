package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// pprofOnAdmin is the -pprof value that mounts the profiles on the admin
// listener.
const pprofOnAdmin = "admin"

// checkPprof checks -pprof against the admin section: with an admin
// listener the profiles are served there only (-pprof admin), so a
// separate address is refused rather than silently ignored; "admin"
// without an admin listener is refused too.
func checkPprof(flag string, admin proxy.AdminConfig) error {
	switch {
	case flag == "":
		return nil
	case admin.Enabled() && flag != pprofOnAdmin:
		return errors.New("-pprof " + flag + ": the config has an admin listener (admin.port), which serves the profiles; use -pprof admin")
	case !admin.Enabled() && flag == pprofOnAdmin:
		return errors.New("-pprof admin: the config has no admin listener; set admin.port or give -pprof an address")
	}
	return nil
}

// mountPprof adds net/http/pprof's handlers under /debug/pprof/.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// startPprof serves the runtime profiles on their own listener, never on
// the proxy's port, so they are reachable only where the operator binds
// them (use a loopback address).
func startPprof(addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mountPprof(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("sluice: pprof listening", "addr", ln.Addr().String())
	return nil
}

// startAdmin serves the admin listener (proxy.Server.AdminHandler:
// /health, /ready, /metrics), with the profiles when pprof is set. The
// caller closes the returned server once the proxy has drained.
func startAdmin(addr string, srv *proxy.Server, pprof bool, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.AdminHandler())
	if pprof {
		mountPprof(mux)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	logger.Info("sluice: admin listening", "addr", ln.Addr().String(), "pprof", pprof)
	return hs, nil
}
