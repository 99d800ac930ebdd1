package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// streamBench runs the SSE benchmark: for each stream count, -rounds
// rounds of N concurrent streams from a proxytest upstream, directly and
// through a fresh Sluice (order alternating per round). Sluice is started
// anew for every run so that its idle and peak memory belong to that run.
// It returns the results and notes for the report.
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
	var out []streamResult
	for _, n := range o.streams {
		// Sluice holds two sockets per stream; the client and the
		// upstream one each.
		if need := uint64(2*n + 1024); nofile < need {
			notes = append(notes, fmt.Sprintf("%d streams skipped: the open-file limit is %d, Sluice needs about %d (two sockets per stream); raise it (ulimit -Hn) to run them", n, nofile, need))
			logf("benchmarks: %s", notes[len(notes)-1])
			continue
		}
		for r := 0; r < o.rounds; r++ {
			paths := []string{kindDirect, kindSluice}
			if r%2 == 1 {
				paths[0], paths[1] = paths[1], paths[0]
			}
			for _, path := range paths {
				var res streamResult
				var err error
				if path == kindDirect {
					res.Client, err = runStreamPath(ctx, e.procs, e.pinLoad, llmAddr, n, o.streamTokens, o.streamDelay, nil)
				} else {
					res, err = e.sluiceStreamRun(ctx, o, n, llmAddr)
				}
				if err != nil {
					return out, notes, err
				}
				res.Path, res.Round, res.Tokens, res.DelayMs = path, r, o.streamTokens, ms(o.streamDelay)
				logf("benchmarks: stream round %d/%d n=%d %-6s completed %d/%d  lateness p50 %.3f ms p99 %.3f ms%s",
					r+1, o.rounds, n, path, res.Client.Completed, n, res.Client.Lateness.P50, res.Client.Lateness.P99, memNote(res))
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

func memNote(r streamResult) string {
	if r.Path == kindDirect {
		return ""
	}
	return fmt.Sprintf("  RSS %d→%d KiB  CPU %.1f µs/event", r.RSSIdleKiB, r.RSSPeakKiB, r.CPUPerEvent)
}

// sluiceStreamRun starts Sluice in front of the LLM upstream, warms it with
// one stream, records idle memory and CPU, runs n streams through it while
// sampling its RSS, and stops it.
func (e *env) sluiceStreamRun(ctx context.Context, o options, n int, llmAddr string) (streamResult, error) {
	var res streamResult
	if e.sluiceBin == "" {
		return res, fmt.Errorf("benchmarks: stream: sluice binary not built")
	}
	port := o.portBase + portSluiceStream
	if err := checkPort(port); err != nil {
		return res, err
	}
	llmPort, _ := strconv.Atoi(llmAddr[len("127.0.0.1:"):])
	b, err := sluiceYAML(port, llmPort, n+64, nil, "")
	if err != nil {
		return res, err
	}
	path := filepath.Join(e.tmp, "sluice-stream.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return res, fmt.Errorf("benchmarks: %w", err)
	}
	p, err := e.procs.Start("sluice (stream)", pinned(e.pinProxy, e.sluiceBin, "-config", path))
	if err != nil {
		return res, err
	}
	defer e.procs.Stop(p)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(base+"/ready", http.StatusOK, readyTimeout, p); err != nil {
		return res, fmt.Errorf("%w\n%s", err, tail(p.Output(), 2000))
	}
	if err := warmStream(base, o.streamTokens, o.streamDelay); err != nil {
		return res, err
	}
	if res.RSSIdleKiB, err = rssKiB(p.Pid()); err != nil {
		return res, err
	}
	res.RSSPeakKiB = res.RSSIdleKiB
	t0, err := treeTicks(p.Pid())
	if err != nil {
		return res, err
	}
	res.Client, err = runStreamPath(ctx, e.procs, e.pinLoad, "127.0.0.1:"+strconv.Itoa(port), n, o.streamTokens, o.streamDelay, func() {
		if v, err := rssKiB(p.Pid()); err == nil && v > res.RSSPeakKiB {
			res.RSSPeakKiB = v
		}
	})
	if err != nil {
		return res, err
	}
	t1, err := treeTicks(p.Pid())
	if err != nil {
		return res, fmt.Errorf("benchmarks: sluice during streams: %w\n%s", err, tail(p.Output(), 2000))
	}
	clk := clockTicks()
	res.CPUMicros = float64(t1-t0) * 1e6 / clk
	if res.Client.Events > 0 {
		res.CPUPerEvent = res.CPUMicros / float64(res.Client.Events)
	}
	return res, nil
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
		return fmt.Errorf("benchmarks: stream warm-up through Sluice answered %s: %q", resp.Status, tail(string(body), 300))
	}
	return nil
}
