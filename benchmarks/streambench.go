package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// streamBench runs the SSE benchmark: for each stream count, -rounds
// rounds of N concurrent streams from a proxytest upstream, directly and
// through each proxy (Sluice, and nginx with proxy_buffering off and
// HAProxy when installed and selected; issue 12), in an order rotated per
// round. Each proxy is started anew for every run so that its idle and
// peak memory belong to that run. It returns the results and notes for the
// report.
func (e *env) streamBench(ctx context.Context, o options, nofile uint64) ([]streamResult, []string, error) {
	var notes []string
	llmAddr := "127.0.0.1:" + strconv.Itoa(o.portBase+portLLM)
	if err := checkPort(o.portBase + portLLM); err != nil {
		return nil, notes, err
	}
	cmd, err := selfCommand(e.pinLoad, "llm", "-addr", llmAddr,
		"-tokens", strconv.Itoa(o.streamTokens), "-token-delay", o.streamDelay.String())
	if err != nil {
		return nil, notes, err
	}
	llm, err := e.procs.Start("llm upstream", cmd)
	if err != nil {
		return nil, notes, err
	}
	defer e.procs.Stop(llm)
	if err := waitHTTP("http://"+llmAddr+"/health", http.StatusOK, readyTimeout, llm); err != nil {
		return nil, notes, err
	}
	paths := streamPaths(o)
	var out []streamResult
	for _, n := range o.streams {
		// A proxy holds two sockets per stream; the client and the
		// upstream one each.
		if need := uint64(2*n + 1024); nofile < need {
			notes = append(notes, fmt.Sprintf("%d streams skipped: the open-file limit is %d, a proxy needs about %d (two sockets per stream); raise it (ulimit -Hn) to run them", n, nofile, need))
			logf("benchmarks: %s", notes[len(notes)-1])
			continue
		}
		for r := 0; r < o.rounds; r++ {
			for i := range paths {
				path := paths[(i+r)%len(paths)]
				var res streamResult
				var err error
				if path == kindDirect {
					res.Client, err = runStreamPath(ctx, e.procs, e.pinLoad, llmAddr, n, o.streamTokens, o.streamDelay, nil)
				} else {
					res, err = e.proxyStreamRun(ctx, o, path, n, llmAddr)
				}
				if err != nil {
					return out, notes, err
				}
				res.Path, res.Round, res.Tokens, res.DelayMs = path, r, o.streamTokens, ms(o.streamDelay)
				logf("benchmarks: stream round %d/%d n=%d %-7s completed %d/%d  TTFB p50 %.1f ms p99 %.1f ms  lateness p50 %.3f ms p99 %.3f ms%s",
					r+1, o.rounds, n, path, res.Client.Completed, n, res.Client.TTFB.P50, res.Client.TTFB.P99,
					res.Client.Lateness.P50, res.Client.Lateness.P99, memNote(res))
				if res.Client.Failed > 0 {
					notes = append(notes, fmt.Sprintf("streams round %d, %s, n=%d: %d streams failed; first error: %s",
						r+1, path, n, res.Client.Failed, res.Client.FirstErr))
					logf("benchmarks: %s", notes[len(notes)-1])
				}
				out = append(out, res)
			}
		}
	}
	return out, notes, nil
}

// streamPaths lists the streaming contenders: direct and Sluice always,
// nginx and HAProxy when installed and selected by -contenders.
func streamPaths(o options) []string {
	paths := []string{kindDirect, kindSluice}
	for _, k := range []string{kindNginx, kindHAProxy} {
		if _, err := exec.LookPath(k); err == nil && o.selected(k) {
			paths = append(paths, k)
		}
	}
	return paths
}

func memNote(r streamResult) string {
	if r.Path == kindDirect {
		return ""
	}
	return fmt.Sprintf("  RSS %d→%d KiB  CPU %.1f µs/event", r.RSSIdleKiB, r.RSSPeakKiB, r.CPUPerEvent)
}

// startStreamProxy starts proxy kind in front of the LLM upstream for n
// streams and returns it and its port.
func (e *env) startStreamProxy(kind string, n, llmPort, portBase int) (*proc, int, error) {
	var cmd *exec.Cmd
	var port int
	switch kind {
	case kindSluice:
		if e.sluiceBin == "" {
			return nil, 0, fmt.Errorf("benchmarks: stream: sluice binary not built")
		}
		port = portBase + portSluiceStream
		b, err := sluiceYAML(port, llmPort, n+64, nil, "")
		if err != nil {
			return nil, 0, err
		}
		path := filepath.Join(e.tmp, "sluice-stream.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, 0, fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, e.sluiceBin, "-config", path)
	case kindNginx:
		port = portBase + portStreamNginx
		dir := filepath.Join(e.tmp, "nginx-stream")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, 0, fmt.Errorf("benchmarks: %w", err)
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(dir, port, llmPort, n+64, true)), 0o644); err != nil {
			return nil, 0, fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, "nginx", "-e", "stderr", "-p", dir, "-c", conf)
	case kindHAProxy:
		port = portBase + portStreamHAProxy
		conf := filepath.Join(e.tmp, "haproxy-stream.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConf(port, llmPort, 4*n+1024, true)), 0o644); err != nil {
			return nil, 0, fmt.Errorf("benchmarks: %w", err)
		}
		cmd = pinned(e.pinProxy, "haproxy", "-db", "-f", conf)
	default:
		return nil, 0, fmt.Errorf("benchmarks: stream: unknown proxy %q", kind)
	}
	if err := checkPort(port); err != nil {
		return nil, 0, err
	}
	p, err := e.procs.Start(kind+" (stream)", cmd)
	return p, port, err
}

// proxyStreamRun starts proxy kind in front of the LLM upstream, warms it
// with one stream, records idle memory and CPU, runs n streams through it
// while sampling its memory, and stops it. Memory and CPU are those of the
// proxy's whole process tree (nginx's master and worker).
func (e *env) proxyStreamRun(ctx context.Context, o options, kind string, n int, llmAddr string) (streamResult, error) {
	var res streamResult
	llmPort, _ := strconv.Atoi(llmAddr[len("127.0.0.1:"):])
	p, port, err := e.startStreamProxy(kind, n, llmPort, o.portBase)
	if err != nil {
		return res, err
	}
	defer e.procs.Stop(p)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	// Sluice answers /ready itself; the others are ready once a stream
	// passes.
	if err := waitReady(base, kind, o, p); err != nil {
		return res, err
	}
	tree := treePids(p.Pid())
	if res.RSSIdleKiB, err = treeRSSKiB(tree); err != nil {
		return res, err
	}
	res.RSSPeakKiB = res.RSSIdleKiB
	t0, err := treeTicks(p.Pid())
	if err != nil {
		return res, err
	}
	res.Client, err = runStreamPath(ctx, e.procs, e.pinLoad, "127.0.0.1:"+strconv.Itoa(port), n, o.streamTokens, o.streamDelay, func() {
		if v, err := treeRSSKiB(tree); err == nil && v > res.RSSPeakKiB {
			res.RSSPeakKiB = v
		}
	})
	if err != nil {
		return res, err
	}
	t1, err := treeTicks(p.Pid())
	if err != nil {
		return res, fmt.Errorf("benchmarks: %s during streams: %w\n%s", kind, err, tail(p.Output(), 2000))
	}
	res.CPUMicros = float64(t1-t0) * 1e6 / clockTicks()
	if res.Client.Events > 0 {
		res.CPUPerEvent = res.CPUMicros / float64(res.Client.Events)
	}
	return res, nil
}

// waitReady waits until the stream proxy at base passes one warm-up
// stream (after /ready for Sluice).
func waitReady(base, kind string, o options, p *proc) error {
	if kind == kindSluice {
		if err := waitHTTP(base+"/ready", http.StatusOK, readyTimeout, p); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(p.Output(), 2000))
		}
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		err := warmStream(base, o.streamTokens, o.streamDelay)
		if err == nil {
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("benchmarks: %s (stream): %w\n%s", kind, err, tail(p.Output(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warmStream runs one streamed completion through base and checks that it
// ends with [DONE].
func warmStream(base string, tokens int, delay time.Duration) error {
	c := &http.Client{Timeout: 30*time.Second + time.Duration(tokens)*delay}
	resp, err := c.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(streamRequest(tokens)))
	if err != nil {
		return fmt.Errorf("benchmarks: stream warm-up: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("benchmarks: stream warm-up: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("data: [DONE]")) {
		return fmt.Errorf("benchmarks: stream warm-up answered %s: %q", resp.Status, tail(string(body), 300))
	}
	return nil
}
