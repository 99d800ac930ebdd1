package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// streamClientResult is what the stream client helper prints as JSON:
// distributions over every stream it ran, in milliseconds.
type streamClientResult struct {
	Streams   int
	Completed int    // streams that ended with data: [DONE]
	Failed    int    // streams with an error (FirstErr names one)
	FirstErr  string `json:",omitempty"`
	Events    int64  // data: events received, [DONE] excluded
	// TTFB is the time from writing the request to the response headers.
	TTFB pcts
	// Lateness is, for every event, its arrival time after the request
	// was written minus the time the upstream schedules it at: token k
	// (0-based) after (k+1)×TokenDelay, the closing events after
	// Tokens×TokenDelay. Comparing its distribution through the proxy with
	// the direct one gives the latency the proxy adds per event.
	Lateness pcts
	// FirstLateness is the lateness of each stream's first event alone;
	// Settled is, for the later events, their lateness minus that of
	// their stream's first event: the delay added per event once a stream
	// flows, without the start-up cost that FirstLateness carries.
	FirstLateness, Settled pcts
	WallMs                 float64
}

// pcts are percentiles in milliseconds.
type pcts struct{ P50, P90, P99, Max float64 }

func percentiles(v []float64) pcts {
	if len(v) == 0 {
		return pcts{}
	}
	slices.Sort(v)
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.5) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return pcts{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: v[len(v)-1]}
}

// streamRequest is the body of every streamed chat completion.
func streamRequest(tokens int) []byte {
	return []byte(`{"model":"proxytest-model","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":` +
		strconv.Itoa(tokens) + `}`)
}

// runStreamClient is the "stream-client" helper: it opens -streams
// connections to -addr first, then starts one streamed chat completion on
// each, staggered evenly over one token delay so events do not all arrive
// in the same instant, reads every event and prints a streamClientResult.
func runStreamClient(args []string) error {
	fs := flag.NewFlagSet("stream-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port to stream from")
	n := fs.Int("streams", 1000, "concurrent streams")
	tokens := fs.Int("tokens", 40, "tokens per stream (must match the upstream)")
	delay := fs.Duration("token-delay", 50*time.Millisecond, "upstream delay before each token")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("benchmarks: stream-client: %w", err)
	}
	if *addr == "" || *n < 1 || *tokens < 1 || *delay < 0 {
		return errors.New("benchmarks: stream-client: need -addr, -streams >= 1, -tokens >= 1, -token-delay >= 0")
	}
	res, err := streamClient(*addr, *n, *tokens, *delay, *timeout)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// streamOutcome is one stream's measurements.
type streamOutcome struct {
	ttfb     float64
	lateness []float64
	done     bool
	err      error
}

func streamClient(addr string, n, tokens int, delay, timeout time.Duration) (streamClientResult, error) {
	deadline := time.Now().Add(timeout)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	// Dial everything first, 64 at a time, so that all streams are open
	// together and the accept queue does not overflow.
	sem := make(chan struct{}, 64)
	var dialErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && dialErr == nil {
				dialErr = fmt.Errorf("benchmarks: stream-client: dial %s (connection %d of %d): %w", addr, i+1, n, err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if dialErr != nil {
		return streamClientResult{}, dialErr
	}
	body := streamRequest(tokens)
	req := []byte("POST /v1/chat/completions HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
	out := make([]streamOutcome, n)
	start := make(chan struct{})
	t0 := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Stagger the starts over one token delay.
			time.Sleep(time.Duration(int64(delay) * int64(i) / int64(n)))
			out[i] = oneStream(c, req, tokens, delay, deadline)
		}()
	}
	close(start)
	wg.Wait()
	res := streamClientResult{Streams: n, WallMs: ms(time.Since(t0))}
	var ttfb, late, first, settled []float64
	for _, o := range out {
		if o.err != nil {
			res.Failed++
			if res.FirstErr == "" {
				res.FirstErr = o.err.Error()
			}
		}
		if o.done {
			res.Completed++
		}
		if o.ttfb > 0 {
			ttfb = append(ttfb, o.ttfb)
		}
		late = append(late, o.lateness...)
		if len(o.lateness) > 0 {
			first = append(first, o.lateness[0])
			for _, l := range o.lateness[1:] {
				settled = append(settled, l-o.lateness[0])
			}
		}
		res.Events += int64(len(o.lateness))
	}
	res.TTFB, res.Lateness = percentiles(ttfb), percentiles(late)
	res.FirstLateness, res.Settled = percentiles(first), percentiles(settled)
	return res, nil
}

// oneStream runs one streamed request on c and times every event.
func oneStream(c net.Conn, req []byte, tokens int, delay time.Duration, deadline time.Time) streamOutcome {
	var o streamOutcome
	_ = c.SetDeadline(deadline)
	t0 := time.Now()
	if _, err := c.Write(req); err != nil {
		o.err = fmt.Errorf("write request: %w", err)
		return o
	}
	br := bufio.NewReaderSize(c, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		o.err = fmt.Errorf("read response headers: %w", err)
		return o
	}
	defer resp.Body.Close()
	o.ttfb = ms(time.Since(t0))
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		o.err = fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
		return o
	}
	lines := bufio.NewReaderSize(resp.Body, 16<<10)
	k := 0
	for {
		line, err := lines.ReadSlice('\n')
		if len(line) > 0 {
			at := time.Since(t0)
			data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data: "))
			if ok {
				if string(data) == "[DONE]" {
					o.done = true
					return o
				}
				sched := time.Duration(min(k+1, tokens)) * delay
				o.lateness = append(o.lateness, ms(at-sched))
				k++
			}
		}
		if err != nil {
			o.err = fmt.Errorf("stream ended after %d events without [DONE]: %w", k, err)
			return o
		}
	}
}

// streamResult is one path (direct or through Sluice) at one stream count
// in one round, as reported.
type streamResult struct {
	Path    string // "direct" or "sluice"
	Round   int
	Client  streamClientResult
	Tokens  int
	DelayMs float64
	// Sluice only: resident memory before the streams (after one warm-up
	// stream) and its peak while they ran, in KiB, and CPU per event.
	RSSIdleKiB, RSSPeakKiB int64
	CPUMicros              float64
	CPUPerEvent            float64
}

// streamTable renders one line per path and stream count: medians over
// rounds, with the latency Sluice adds over the direct path in the same
// round.
func streamTable(rs []streamResult) string {
	type key struct {
		path string
		n    int
	}
	groups := map[key][]streamResult{}
	var order []key
	direct := map[[2]int]streamResult{} // (n, round)
	nginx := map[[2]int]streamResult{}
	for _, r := range rs {
		k := key{r.Path, r.Client.Streams}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
		switch r.Path {
		case kindDirect:
			direct[[2]int{r.Client.Streams, r.Round}] = r
		case kindNginx:
			nginx[[2]int{r.Client.Streams, r.Round}] = r
		}
	}
	var b strings.Builder
	b.WriteString("Each stream: POST /v1/chat/completions with \"stream\":true against proxytest; all streams are connected first, then started staggered over one token delay. " +
		"Lateness = event arrival (after the request was written) − the upstream's schedule for it; first = the first event's lateness; settled = a later event's lateness − its stream's first; " +
		"added = proxy − direct in the same round, per percentile; ÷ direct and ÷ nginx are per-round ratios, then their median. Medians over rounds. " +
		"RSS and CPU are the proxy's whole process tree (idle = after one warm-up stream); KiB/stream = (peak − idle) ÷ streams; CPU µs/event = user+system time over the run ÷ events forwarded.\n\n")
	b.WriteString("| path | streams | tokens × delay | completed | events | TTFB p50 / p99 ms | first p50 / p99 ms | lateness p50 / p99 ms | settled p50 / p99 ms | TTFB p50 / p99 ÷ direct | added lateness p50 / p99 ms | added settled p50 / p99 ms | RSS idle → peak MiB | RSS KiB/stream | CPU µs/event | CPU/event ÷ nginx |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range order {
		g := groups[k]
		col := func(f func(streamResult) float64) float64 {
			v := make([]float64, 0, len(g))
			for _, r := range g {
				v = append(v, f(r))
			}
			return newStat(v).Median
		}
		added, addedSettled, ttfbRatio := "–", "–", "–"
		mem, perStream, cpu, cpuRatio := "–", "–", "–", "–"
		if k.path != kindDirect {
			var a50, a99, s50, s99, t50, t99, cr []float64
			for _, r := range g {
				if ng, ok := nginx[[2]int{k.n, r.Round}]; ok && ng.CPUPerEvent > 0 {
					cr = append(cr, r.CPUPerEvent/ng.CPUPerEvent)
				}
				if d, ok := direct[[2]int{k.n, r.Round}]; ok {
					if d.Client.TTFB.P50 > 0 && d.Client.TTFB.P99 > 0 {
						t50 = append(t50, r.Client.TTFB.P50/d.Client.TTFB.P50)
						t99 = append(t99, r.Client.TTFB.P99/d.Client.TTFB.P99)
					}
					a50 = append(a50, r.Client.Lateness.P50-d.Client.Lateness.P50)
					a99 = append(a99, r.Client.Lateness.P99-d.Client.Lateness.P99)
					s50 = append(s50, r.Client.Settled.P50-d.Client.Settled.P50)
					s99 = append(s99, r.Client.Settled.P99-d.Client.Settled.P99)
				}
			}
			if len(a50) > 0 {
				added = fmt.Sprintf("%.3f / %.3f", newStat(a50).Median, newStat(a99).Median)
				addedSettled = fmt.Sprintf("%.3f / %.3f", newStat(s50).Median, newStat(s99).Median)
			}
			if len(t50) > 0 {
				ttfbRatio = fmt.Sprintf("%.2f / %.2f", newStat(t50).Median, newStat(t99).Median)
			}
			if len(cr) > 0 {
				cpuRatio = fmt.Sprintf("%.2f", newStat(cr).Median)
			}
			idle := col(func(r streamResult) float64 { return float64(r.RSSIdleKiB) })
			peak := col(func(r streamResult) float64 { return float64(r.RSSPeakKiB) })
			mem = fmt.Sprintf("%.1f → %.1f", idle/1024, peak/1024)
			perStream = fmt.Sprintf("%.1f", col(func(r streamResult) float64 {
				return float64(r.RSSPeakKiB-r.RSSIdleKiB) / float64(r.Client.Streams)
			}))
			cpu = fmt.Sprintf("%.1f", col(func(r streamResult) float64 { return r.CPUPerEvent }))
		}
		fmt.Fprintf(&b, "| %s | %d | %d × %.0f ms | %.0f | %.0f | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %s | %s | %s | %s | %s | %s | %s |\n",
			k.path, k.n, g[0].Tokens, g[0].DelayMs,
			col(func(r streamResult) float64 { return float64(r.Client.Completed) }),
			col(func(r streamResult) float64 { return float64(r.Client.Events) }),
			col(func(r streamResult) float64 { return r.Client.TTFB.P50 }),
			col(func(r streamResult) float64 { return r.Client.TTFB.P99 }),
			col(func(r streamResult) float64 { return r.Client.FirstLateness.P50 }),
			col(func(r streamResult) float64 { return r.Client.FirstLateness.P99 }),
			col(func(r streamResult) float64 { return r.Client.Lateness.P50 }),
			col(func(r streamResult) float64 { return r.Client.Lateness.P99 }),
			col(func(r streamResult) float64 { return r.Client.Settled.P50 }),
			col(func(r streamResult) float64 { return r.Client.Settled.P99 }),
			ttfbRatio, added, addedSettled, mem, perStream, cpu, cpuRatio)
	}
	return b.String()
}

// runStreamPath runs the stream client helper against addr, pinned to the
// load CPU. While it runs, sample (when not nil) is called every 20 ms; it
// is how the caller follows Sluice's memory.
func runStreamPath(ctx context.Context, procs *procSet, pin []string, addr string, n, tokens int, delay time.Duration, sample func()) (streamClientResult, error) {
	var res streamClientResult
	timeout := 2*time.Minute + time.Duration(tokens)*delay*2
	cmd, err := selfCommand(pin, "stream-client", "-addr", addr, "-streams", strconv.Itoa(n),
		"-tokens", strconv.Itoa(tokens), "-token-delay", delay.String(), "-timeout", timeout.String())
	if err != nil {
		return res, err
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p, err := procs.Start("stream client", cmd)
	if err != nil {
		return res, err
	}
	defer procs.Stop(p)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !p.Exited() {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("benchmarks: stream client: %w", ctx.Err())
		case <-p.done:
		case <-tick.C:
			if sample != nil {
				sample()
			}
		}
	}
	if p.err != nil {
		return res, fmt.Errorf("benchmarks: stream client against %s: %w\n%s", addr, p.err, tail(p.Output(), 2000))
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("benchmarks: stream client output: %w: %q", err, tail(stdout.String(), 300))
	}
	return res, nil
}
