// Command benchmarks measures Sluice against nginx and HAProxy on this
// machine, on 127.0.0.1 only:
//
//	go run ./benchmarks -rounds 5 -duration 5s
//
// It builds Sluice (and the headers-only benchmark plugin for each guest
// language it can), starts a fast upstream, the contenders and wrk pinned
// to separate CPUs, runs interleaved rounds, and writes
// results-latest.md, results-latest.json and chart.png into -out. It
// installs nothing: missing tools are named with the apt-get command that
// installs them. Every process it starts is stopped, by process group, on
// every exit path including SIGINT and SIGTERM.
//
// With -fleet it runs the routing-quality benchmark instead (fleet.go):
// simulated inference engines behind Sluice, every load-balancing policy
// and routing plugin, writing fleet-latest.md, fleet-latest.json and
// fleet-chart.png. With -plugin-cost it measures what each routing
// plugin's callbacks cost per request in a Sluice loaded by wrk
// (plugincost.go), writing plugincost-latest.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// options are the command-line flags, validated.
type options struct {
	rounds        int
	duration      time.Duration
	warmup        time.Duration
	conns         []int
	out           string
	contenders    []string // empty: all
	skipMissing   bool
	streamOnly    bool
	skipStream    bool
	streams       []int
	streamTokens  int
	streamDelay   time.Duration
	plugins       bool
	pluginsOnly   bool
	pluginConns   int
	portBase      int
	upstream      string // upstreamNginx or upstreamFasthttp
	repo          string
	keepTmp       bool
	commandLine   string
	wantsWrkBench bool
	fleet         bool         // run the fleet benchmark (fleet.go) instead
	fleetOpts     fleetOptions // its -fleet-* flags
	pluginCost    bool         // run the plugin-cost benchmark (plugincost.go) instead
	costConns     []int        // its connection counts
}

// contenderNames lists every contender, in table order.
var contenderNames = []string{
	kindDirect, kindNginx, kindHAProxy, kindSluice, "sluice-go", "sluice-c", "sluice-as",
	"sluice-go-x3", "sluice-c-x3", "sluice-as-x3", "sluice-golist", "sluice-golist-log",
}

func parseFlags(args []string) (options, error) {
	var o options
	var err error
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds (at least 3)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each wrk run (whole seconds)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "one wrk warm-up run per contender and connection count before the rounds (0 = none)")
	conns := fs.String("conns", "50,256", "comma-separated wrk connection counts")
	fs.StringVar(&o.out, "out", "benchmarks", "directory for results-latest.md, results-latest.json and chart.png")
	filter := fs.String("contenders", "", "comma-separated contenders to run (default all): "+strings.Join(contenderNames, ", "))
	fs.BoolVar(&o.skipMissing, "skip-missing", false, "run without contenders whose tools are not installed instead of failing")
	fs.BoolVar(&o.streamOnly, "stream-only", false, "run only the streaming (SSE) benchmark")
	fs.BoolVar(&o.skipStream, "skip-stream", false, "skip the streaming (SSE) benchmark")
	streams := fs.String("streams", "1000,10000", "concurrent SSE stream counts; a count the open-file limit cannot carry is skipped with a note")
	fs.IntVar(&o.streamTokens, "stream-tokens", 40, "tokens per SSE stream")
	fs.DurationVar(&o.streamDelay, "stream-token-delay", 50*time.Millisecond, "upstream delay before each SSE token")
	fs.BoolVar(&o.plugins, "plugins", true, "run the plugin-chain benchmark (0, 1 and 3 plugins per guest language)")
	fs.BoolVar(&o.pluginsOnly, "plugins-only", false, "run only the plugin-chain benchmark")
	fs.IntVar(&o.pluginConns, "plugin-conns", 50, "wrk connections for the plugin-chain benchmark")
	fs.IntVar(&o.portBase, "port-base", 18080, fmt.Sprintf("first of the %d consecutive 127.0.0.1 ports used (upstream, then contenders)", portCount))
	fs.StringVar(&o.upstream, "upstream", upstreamNginx, "upstream for the wrk benchmarks: nginx (`return 200`, never the bottleneck) or fasthttp (the harness's own helper)")
	fs.StringVar(&o.repo, "repo", ".", "Sluice module root (where go.mod is)")
	fs.BoolVar(&o.keepTmp, "keep-tmp", false, "keep the scratch directory (configs, binaries) for inspection")
	fs.BoolVar(&o.fleet, "fleet", false, "run the routing-quality benchmark (simulated engines behind Sluice, every lb_policy and routing plugin) instead")
	fleetDone := fleetFlags(fs)
	fs.BoolVar(&o.pluginCost, "plugin-cost", false, "run the plugin-cost benchmark (each routing plugin's callback time per request in a Sluice loaded by wrk with 8 KiB chat bodies) instead")
	costConns := fs.String("plugin-cost-conns", "1,8,32", "comma-separated wrk connection counts for -plugin-cost")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.fleetOpts, err = fleetDone(); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("benchmarks: unexpected arguments %q", fs.Args())
	}
	switch {
	case o.rounds < 3:
		return o, fmt.Errorf("benchmarks: -rounds is %d, must be at least 3 (medians need them)", o.rounds)
	case o.duration < time.Second || o.duration%time.Second != 0:
		return o, fmt.Errorf("benchmarks: -duration is %v, must be a whole number of seconds >= 1s (wrk's unit)", o.duration)
	case o.warmup < 0 || o.warmup%time.Second != 0:
		return o, fmt.Errorf("benchmarks: -warmup is %v, must be 0 or a whole number of seconds", o.warmup)
	case o.streamOnly && o.skipStream:
		return o, errors.New("benchmarks: -stream-only and -skip-stream exclude each other")
	case o.streamOnly && o.pluginsOnly:
		return o, errors.New("benchmarks: -stream-only and -plugins-only exclude each other")
	case o.streamTokens < 1:
		return o, fmt.Errorf("benchmarks: -stream-tokens is %d, must be >= 1", o.streamTokens)
	case o.streamDelay < 0:
		return o, fmt.Errorf("benchmarks: -stream-token-delay is %v, must be >= 0", o.streamDelay)
	case o.pluginConns < 1:
		return o, fmt.Errorf("benchmarks: -plugin-conns is %d, must be >= 1", o.pluginConns)
	case o.portBase < 1024 || o.portBase > 65535-portCount:
		return o, fmt.Errorf("benchmarks: -port-base is %d, must be in 1024–%d", o.portBase, 65535-portCount)
	case o.upstream != upstreamNginx && o.upstream != upstreamFasthttp:
		return o, fmt.Errorf("benchmarks: -upstream is %q, must be %s or %s", o.upstream, upstreamNginx, upstreamFasthttp)
	}
	if o.conns, err = parseInts("-conns", *conns); err != nil {
		return o, err
	}
	if o.streams, err = parseInts("-streams", *streams); err != nil {
		return o, err
	}
	if o.costConns, err = parseInts("-plugin-cost-conns", *costConns); err != nil {
		return o, err
	}
	if o.fleet && o.pluginCost {
		return o, errors.New("benchmarks: -fleet and -plugin-cost exclude each other")
	}
	if *filter != "" {
		for _, n := range strings.Split(*filter, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(contenderNames, n) {
				return o, fmt.Errorf("benchmarks: -contenders: unknown contender %q (known: %s)", n, strings.Join(contenderNames, ", "))
			}
			o.contenders = append(o.contenders, n)
		}
	}
	if o.pluginsOnly {
		o.plugins = true
	}
	o.wantsWrkBench = !o.streamOnly
	o.commandLine = "go run ./benchmarks"
	if len(args) > 0 {
		o.commandLine += " " + strings.Join(args, " ")
	}
	return o, nil
}

// parseInts reads a comma-separated list of positive integers.
func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("benchmarks: %s: %q is not a positive integer", flagName, f)
		}
		out = append(out, v)
	}
	return out, nil
}

// selected reports whether contender name passes the -contenders filter.
func (o *options) selected(name string) bool {
	return len(o.contenders) == 0 || slices.Contains(o.contenders, name)
}

// missingTools returns the tools the run needs that are not on PATH.
func missingTools(o *options, ncpu int) []string {
	var need []string
	if o.wantsWrkBench {
		need = append(need, "wrk")
		if (!o.pluginsOnly && o.selected(kindNginx)) || o.upstream == upstreamNginx {
			need = append(need, "nginx")
		}
		if !o.pluginsOnly && o.selected(kindHAProxy) {
			need = append(need, "haproxy")
		}
	}
	if ncpu >= 2 {
		need = append(need, "taskset")
	}
	var missing []string
	for _, t := range need {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// installHint is the command that installs the missing tools.
func installHint(missing []string) string {
	cmd := "apt-get install wrk nginx haproxy"
	if slices.Contains(missing, "taskset") {
		cmd += " util-linux"
	}
	return cmd
}

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// raiseNoFile lifts the soft open-file limit to the hard one, in-process,
// so that the children (Sluice, nginx, the stream client) inherit it, and
// returns the limit now in force. The Go runtime raises its own soft limit
// at start-up but gives children the original one back unless the program
// calls Setrlimit itself, so the call is made even when the limits look
// equal already.
func raiseNoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// clockTicks is the kernel's USER_HZ from `getconf CLK_TCK`. If getconf
// cannot be run it assumes 100, the value on every mainstream Linux
// architecture.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// findRepo returns the absolute module root, checking that it is Sluice's.
func findRepo(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("benchmarks: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("benchmarks: -repo %s: %w (run from the repository root or pass -repo)", dir, err)
	}
	if !strings.Contains(string(b), "module github.com/sluice-proxy/sluice") {
		return "", fmt.Errorf("benchmarks: -repo %s: go.mod is not Sluice's", dir)
	}
	return abs, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(runChild(os.Args[2:]))
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

// run does the whole benchmark and returns the exit status. Every child
// is stopped before it returns; a signal cancels the run and ends in the
// same cleanup.
func run(o options) int {
	procs := newProcSet()
	defer procs.StopAll()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopSignals := handleSignals(procs, func(sig os.Signal) {
		fmt.Fprintf(os.Stderr, "\nbenchmarks: %v: stopping (again to force)\n", sig)
		cancel()
	})
	defer stopSignals()

	bench := func() error { return runBench(ctx, o, procs) }
	switch {
	case o.fleet:
		bench = func() error {
			_, err := runFleet(ctx, o.fleetOpts, o.repo, o.out, o.commandLine, procs)
			return err
		}
	case o.pluginCost:
		bench = func() error { return runPluginCost(ctx, o, procs) }
	}
	if err := bench(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if ctx.Err() != nil {
			return 130
		}
		var me missingError
		if errors.As(err, &me) {
			return 3
		}
		return 1
	}
	return 0
}

// missingError reports tools that are not installed.
type missingError struct{ tools []string }

func (e missingError) Error() string {
	return fmt.Sprintf("benchmarks: missing %s; install with: %s (or pass -skip-missing to run without them)",
		strings.Join(e.tools, ", "), installHint(e.tools))
}
