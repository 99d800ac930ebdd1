package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/valyala/fasthttp"
)

// childCommand is the hidden first argument that makes the harness binary
// run as one of its own helper processes (the upstreams, the stream
// client), so that each can be pinned to a CPU with taskset and measured
// apart from the harness.
const childCommand = "__child"

// upstreamBody is the fast upstream's reply: 100 bytes, like a small JSON
// answer.
var upstreamBody = []byte(strings.Repeat("sluice-benchmark-upstream-reply ", 3) + "0123")

// benchHeader is the request header the headers plugin adds (copies in a
// chain add x-bench-2, x-bench-3); the upstream reports in benchSeenHeader
// how many values of headers starting with it it saw, so the harness can
// check that a plugin contender really ran each of its plugins.
const (
	benchHeader     = "x-bench"
	benchSeenHeader = "x-bench-seen"
)

// Upstream kinds for the wrk benchmarks (-upstream).
const (
	upstreamNginx    = "nginx"
	upstreamFasthttp = "fasthttp"
)

// verifyPath is where the harness checks that a contender proxies and runs
// its plugins; every other path gets the plain reply.
const verifyPath = "/__bench_verify"

// upstreamSetting describes the upstream for the report.
func upstreamSetting(kind string) string {
	if kind == upstreamNginx {
		return "upstream: nginx, 1 worker on the load CPU, `return 200` with a 100-byte text/plain body (no proxying, no file: it is never the bottleneck); " +
			verifyPath + " alone is passed to the fasthttp helper, which counts the headers the plugins added; `direct` is wrk against nginx (the ceiling)"
	}
	return "upstream: the fasthttp helper process, 100-byte text/plain reply; `direct` is wrk against it (the ceiling)"
}

// nginxUpstreamConf renders the nginx upstream: `return 200` with
// upstreamBody on every path but verifyPath, which goes to the header
// counting helper on verifyPort.
func nginxUpstreamConf(dir string, port, verifyPort, conns int) string {
	return nginxHead(dir, 4*conns+1024) + fmt.Sprintf(`    server_tokens off;
    server {
        listen 127.0.0.1:%[1]d backlog=4096;
        location = %[3]s {
            proxy_pass http://127.0.0.1:%[2]d;
            proxy_http_version 1.1;
        }
        location / {
            default_type text/plain;
            return 200 "%[4]s";
        }
    }
}
`, port, verifyPort, verifyPath, upstreamBody)
}

// runChild runs the helper named by args[0] and returns the process exit
// code.
func runChild(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "benchmarks: child: no helper named")
		return 2
	}
	var err error
	switch args[0] {
	case "upstream":
		err = serveUpstream(args[1:])
	case "llm":
		err = serveLLM(args[1:])
	case "stream-client":
		err = runStreamClient(args[1:])
	default:
		err = fmt.Errorf("benchmarks: child: unknown helper %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serveUpstream serves upstreamBody on every path with fasthttp until
// killed.
func serveUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("benchmarks: upstream: %w", err)
	}
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		return fmt.Errorf("benchmarks: upstream: %w", err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			n := 0
			for k, v := range ctx.Request.Header.All() {
				if len(k) >= len(benchHeader) && strings.EqualFold(string(k[:len(benchHeader)]), benchHeader) {
					n += strings.Count(string(v), ",") + 1
				}
			}
			if n > 0 {
				ctx.Response.Header.Set(benchSeenHeader, strconv.Itoa(n))
			}
			ctx.SetContentType("text/plain")
			ctx.SetBody(upstreamBody)
		},
		Name:                 "bench-upstream",
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		Concurrency:          1 << 20,
		ReadTimeout:          time.Minute,
		IdleTimeout:          time.Minute,
	}
	return srv.Serve(ln)
}

// serveLLM serves a proxytest fake OpenAI server until killed.
func serveLLM(args []string) error {
	fs := flag.NewFlagSet("llm", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18090", "listen address")
	tokens := fs.Int("tokens", 64, "tokens per completion")
	delay := fs.Duration("token-delay", 20*time.Millisecond, "delay before each token")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("benchmarks: llm: %w", err)
	}
	opts := proxytest.Options{Tokens: *tokens, TokenDelay: *delay}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("benchmarks: llm: %w", err)
	}
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		return fmt.Errorf("benchmarks: llm: %w", err)
	}
	s := proxytest.NewUnstartedServer(opts)
	defer s.Close()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// selfCommand returns a command that runs this binary as helper name,
// prefixed with the CPU pinning pin.
func selfCommand(pin []string, name string, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("benchmarks: find own executable: %w", err)
	}
	all := append(append(append([]string{}, pin...), exe, childCommand, name), args...)
	return exec.Command(all[0], all[1:]...), nil
}

// waitHTTP polls url with GET until it answers wantStatus, ctx-free but
// bounded by timeout; it also gives up early if p exits.
func waitHTTP(url string, wantStatus int, timeout time.Duration, p *proc) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("benchmarks: %s exited before %s answered: %v\n%s", p.name, url, p.err, tail(p.Output(), 2000))
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == wantStatus {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("benchmarks: %s did not answer %d within %v (last: %s)", url, wantStatus, timeout, last)
}

// checkPort fails when something already listens on 127.0.0.1:port.
func checkPort(port int) error {
	c, err := net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("benchmarks: port %d on 127.0.0.1 is already in use (choose another with -port-base)", port)
	}
	return nil
}
