package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one wrk run reports. Durations are wrk's own rounding
// (two decimals in the unit wrk chose).
type WrkResult struct {
	Requests int64         // completed requests ("N requests in …")
	Elapsed  time.Duration // the run's length as wrk measured it
	RPS      float64       // "Requests/sec:"
	P50      time.Duration // latency percentiles from --latency
	P75      time.Duration
	P90      time.Duration
	P99      time.Duration
	// Socket errors (connect, read, write, timeout) and non-2xx/3xx
	// answers; all zero on a clean run.
	ConnectErrors, ReadErrors, WriteErrors, Timeouts int64
	Non2xx                                           int64
}

// Errors is the total of socket errors and non-2xx/3xx answers.
func (r WrkResult) Errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts + r.Non2xx
}

// ParseWrk parses the text wrk 4 prints with --latency. It needs the
// "requests in" line, the "Requests/sec:" line and the 50% and 99% lines of
// the latency distribution; anything else it does not know is ignored.
// A line it knows but cannot read is an error naming that line.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRPS, haveReqs, inDist bool
	pct := map[string]*time.Duration{"50%": &r.P50, "75%": &r.P75, "90%": &r.P90, "99%": &r.P99}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(fields) == 2 && strings.HasSuffix(fields[0], "%"):
			if dst, ok := pct[fields[0]]; ok {
				d, err := parseWrkDuration(fields[1])
				if err != nil {
					return r, fmt.Errorf("benchmarks: wrk output: latency %s: %w", fields[0], err)
				}
				*dst = d
				seen[fields[0]] = true
			}
		case len(fields) >= 4 && fields[1] == "requests" && fields[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("benchmarks: wrk output: bad request count in %q", line)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(fields[3], ","))
			if err != nil {
				return r, fmt.Errorf("benchmarks: wrk output: duration in %q: %w", line, err)
			}
			r.Requests, r.Elapsed, haveReqs = n, d, true
		case strings.HasPrefix(line, "Socket errors:"):
			if err := parseSocketErrors(line, &r); err != nil {
				return r, err
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("benchmarks: wrk output: bad count in %q", line)
			}
			r.Non2xx = n
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return r, fmt.Errorf("benchmarks: wrk output: bad rate in %q", line)
			}
			r.RPS, haveRPS = v, true
		default:
			// Thread Stats, Transfer/sec and banner lines are not needed.
			if len(fields) == 0 || !strings.HasSuffix(fields[0], "%") {
				inDist = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("benchmarks: wrk output: %w", err)
	}
	switch {
	case !haveRPS:
		return r, errors.New(`benchmarks: wrk output: no "Requests/sec:" line`)
	case !haveReqs:
		return r, errors.New(`benchmarks: wrk output: no "N requests in T" line`)
	case !seen["50%"] || !seen["99%"]:
		return r, errors.New("benchmarks: wrk output: no 50% and 99% latency lines (was wrk run with --latency?)")
	case r.P50 > r.P99:
		return r, fmt.Errorf("benchmarks: wrk output: p50 %v above p99 %v", r.P50, r.P99)
	}
	return r, nil
}

// parseSocketErrors reads "Socket errors: connect 0, read 1, write 0, timeout 2".
func parseSocketErrors(line string, r *WrkResult) error {
	rest := strings.TrimPrefix(line, "Socket errors:")
	for _, part := range strings.Split(rest, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return fmt.Errorf("benchmarks: wrk output: bad socket errors in %q", line)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("benchmarks: wrk output: bad socket error count in %q", line)
		}
		switch f[0] {
		case "connect":
			r.ConnectErrors = n
		case "read":
			r.ReadErrors = n
		case "write":
			r.WriteErrors = n
		case "timeout":
			r.Timeouts = n
		default:
			return fmt.Errorf("benchmarks: wrk output: unknown socket error kind %q", f[0])
		}
	}
	return nil
}

// wrkUnits are the time units wrk's format_time prints, longest suffix
// first so that "ms" is not read as "s".
var wrkUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"us", time.Microsecond},
	{"ms", time.Millisecond},
	{"ns", time.Nanosecond},
	{"s", time.Second},
	{"m", time.Minute},
	{"h", time.Hour},
}

// parseWrkDuration reads a wrk time such as "290.00us", "1.02ms", "2.00s"
// or "1.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range wrkUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("bad time %q", s)
		}
		d := v * float64(u.unit)
		if d > float64(math.MaxInt64/2) {
			return 0, fmt.Errorf("time %q out of range", s)
		}
		return time.Duration(math.Round(d)), nil
	}
	return 0, fmt.Errorf("time %q has no unit (us, ms, s, m, h)", s)
}

// runWrk runs `wrk -t1 -c<conns> -d<duration> --latency [extra...] url`,
// prefixed with the CPU pinning in pin (empty: none), and parses its
// output. The run is bounded by duration plus a margin and by ctx.
func runWrk(ctx context.Context, pin []string, conns int, duration time.Duration, url string, extra ...string) (WrkResult, string, error) {
	secs := int(math.Ceil(duration.Seconds()))
	if secs < 1 {
		secs = 1
	}
	args := append(append([]string{}, pin...), "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", "5s", "--latency")
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	setProcessGroup(cmd)
	line := strings.Join(args, " ")
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return WrkResult{}, line, fmt.Errorf("benchmarks: %s: %w", line, ctx.Err())
		}
		return WrkResult{}, line, fmt.Errorf("benchmarks: %s: %w: %s", line, err, tail(stderr.String(), 400))
	}
	if len(extra) > 0 && strings.TrimSpace(stderr.String()) != "" {
		// A script wrk cannot load is reported on stderr, and wrk then
		// sends its default GET instead of failing.
		return WrkResult{}, line, fmt.Errorf("benchmarks: %s: %s", line, tail(stderr.String(), 400))
	}
	r, err := ParseWrk(out.String())
	if err != nil {
		return r, line, fmt.Errorf("%w\n--- wrk output ---\n%s", err, tail(out.String(), 2000))
	}
	return r, line, nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// headTail keeps the first h and last t bytes of s (the first error a
// process logs is usually the cause, the last its latest state).
func headTail(s string, h, t int) string {
	if len(s) <= h+t {
		return s
	}
	return s[:h] + " … " + s[len(s)-t:]
}
