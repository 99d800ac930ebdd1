package plugintest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// CompileCacheDir is the wazero compilation cache every test host shares
// (wasm.HostConfig.CacheDir): os.TempDir()/sluice-plugintest/wazero-cache.
// Compiling a Go guest takes seconds under -race, loading it from the
// cache milliseconds, so tests and test binaries share one directory.
func CompileCacheDir() string {
	return filepath.Join(os.TempDir(), "sluice-plugintest", "wazero-cache")
}

// Serve builds a proxy.Server from cfg and opts, serves it on a free port
// of 127.0.0.1, marks it ready, and returns it with its base URL
// ("http://127.0.0.1:port"). When the test ends the server is shut down
// (waiting up to 5 s for requests in flight) and Serve's goroutine has
// returned. An invalid cfg or a failed listen fails tb.
func Serve(tb testing.TB, cfg *proxy.Config, opts proxy.Options) (*proxy.Server, string) {
	tb.Helper()
	srv, err := proxy.NewServer(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv.Router().SetReady(true)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return srv, "http://" + ln.Addr().String()
}
