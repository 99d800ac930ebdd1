package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Port offsets from -port-base.
const (
	portUpstream = iota
	portSluice
	portSluiceGo
	portSluiceC
	portSluiceAS
	portNginx
	portHAProxy
	portSluiceGo3
	portSluiceC3
	portSluiceAS3
	portLLM
	portSluiceStream
	portSluiceGoList
	portSluiceGoListLog
	portVerify // the header-counting helper behind an nginx upstream
	portStreamNginx
	portStreamHAProxy
	portCount // number of ports used from -port-base
)

// contenderSpec says how to make each named contender: its port offset,
// kind, and for Sluice the guest language and chain length.
var contenderSpec = map[string]struct {
	port, chain int
	kind, lang  string
}{
	kindDirect:     {portUpstream, 0, kindDirect, ""},
	kindNginx:      {portNginx, 0, kindNginx, ""},
	kindHAProxy:    {portHAProxy, 0, kindHAProxy, ""},
	kindSluice:     {portSluice, 0, kindSluice, ""},
	"sluice-go":    {portSluiceGo, 1, kindSluice, "go"},
	"sluice-c":     {portSluiceC, 1, kindSluice, "c"},
	"sluice-as":    {portSluiceAS, 1, kindSluice, "as"},
	"sluice-go-x3": {portSluiceGo3, 3, kindSluice, "go"},
	"sluice-c-x3":  {portSluiceC3, 3, kindSluice, "c"},
	"sluice-as-x3": {portSluiceAS3, 3, kindSluice, "as"},
	// A guest written like third-party-SDK plugins (issue 10): the whole
	// header list read per request, one header set, response headers
	// added; -log also formats a log line per header at info, which the
	// harness's Sluice (log level warn) drops.
	"sluice-golist":     {portSluiceGoList, 1, kindSluice, "golist"},
	"sluice-golist-log": {portSluiceGoListLog, 1, kindSluice, "golist-log"},
}

var (
	mainContenders   = []string{kindDirect, kindNginx, kindHAProxy, kindSluice, "sluice-go", "sluice-c", "sluice-as"}
	pluginContenders = []string{kindSluice, "sluice-go", "sluice-go-x3", "sluice-c", "sluice-c-x3", "sluice-as", "sluice-as-x3", "sluice-golist", "sluice-golist-log"}
)

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// runBench is the whole run: setup, the wrk benchmarks, the streaming
// benchmark and the report. Children are owned by procs (the caller stops
// them).
func runBench(ctx context.Context, o options, procs *procSet) error {
	repo, err := findRepo(o.repo)
	if err != nil {
		return err
	}
	cpus := allowedCPUs()
	rep := &report{Date: time.Now(), Command: o.commandLine}
	loadStart := loadAverage()
	missing := missingTools(&o, len(cpus))
	if len(missing) > 0 {
		if !o.skipMissing {
			return missingError{missing}
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("-skip-missing: %s not installed; what needs them was skipped (%s)",
			strings.Join(missing, ", "), installHint(missing)))
		logf("benchmarks: %s", rep.Notes[len(rep.Notes)-1])
	}
	have := func(tool string) bool { return !slices.Contains(missing, tool) }
	if !have("wrk") {
		o.wantsWrkBench = false
	}
	nofile := raiseNoFile()
	clk := clockTicks()
	tmp, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return fmt.Errorf("benchmarks: %w", err)
	}
	if o.keepTmp {
		logf("benchmarks: scratch directory kept: %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	pinProxy, pinLoad, proxyCPU, layout := cpuLayout(cpus, have("taskset"))
	rep.Layout, rep.Machine = layout, machineInfo()
	logf("benchmarks: %s", layout)
	maxConns := slices.Max(append(slices.Clone(o.conns), o.pluginConns))
	e := &env{repo: repo, tmp: tmp, procs: procs, pinProxy: pinProxy, proxyCPU: proxyCPU, pinLoad: pinLoad,
		upstream: o.portBase + portUpstream, maxConns: maxConns}
	rep.Settings = []string{
		fmt.Sprintf("wrk: `wrk -t1 -c<conns> -d%v --timeout 5s --latency http://127.0.0.1:<port>/`, connections %v, %d interleaved rounds (each round runs every contender once, order rotated by one per round), one %v warm-up run per contender and connection count first",
			o.duration, o.conns, o.rounds, o.warmup),
		upstreamSetting(o.upstream),
		fmt.Sprintf("Sluice: `sluice -config sluice.yaml`, max_concurrent_requests and max_batch_size %d, access log off, level warn", max(4096, 2*maxConns)),
		fmt.Sprintf("nginx: 1 worker, worker_connections %d, access_log off, `upstream { keepalive %d; }`, proxy_http_version 1.1, Connection \"\", keepalive_requests 1000000 (client and upstream side)", 4*maxConns+1024, maxConns),
		fmt.Sprintf("HAProxy: nbthread 1, mode http, http-reuse always, maxconn %d", 4*maxConns+1024),
		fmt.Sprintf("CPU time from /proc/<pid>/stat utime+stime (and live descendants'), %g ticks/s; open-file limit %d", clk, nofile),
	}

	wantStream := !o.skipStream && !o.pluginsOnly
	var wanted []string // contenders to start for the wrk benchmarks
	if o.wantsWrkBench {
		if !o.pluginsOnly {
			wanted = append(wanted, mainContenders...)
		}
		if o.plugins {
			wanted = append(wanted, pluginContenders...)
		}
	}
	wanted = slices.DeleteFunc(slices.Compact(sortedByTable(wanted)), func(n string) bool { return !o.selected(n) })
	for _, tool := range []string{"nginx", "haproxy"} {
		if !have(tool) {
			wanted = slices.DeleteFunc(wanted, func(n string) bool { return n == tool })
		}
	}

	// Build Sluice and the plugins when anything needs them.
	needSluice := wantStream || slices.ContainsFunc(wanted, func(n string) bool { return contenderSpec[n].kind == kindSluice })
	guests := map[string]*guest{}
	if needSluice {
		bin, why, err := buildSluice(ctx, repo, tmp)
		if err != nil {
			return err
		}
		if bin == "" {
			rep.Notes = append(rep.Notes, "Sluice skipped: "+why)
			logf("benchmarks: Sluice skipped: %s", why)
			wantStream = false
		}
		e.sluiceBin = bin
		if bin != "" {
			rep.Settings = append(rep.Settings, "Sluice built with `go build -o <tmp>/sluice ./cmd/sluice`"+gitRev(repo))
		}
		var langs []string
		for _, n := range wanted {
			if l := contenderSpec[n].lang; l != "" && !slices.Contains(langs, l) {
				langs = append(langs, l)
			}
		}
		if bin != "" && len(langs) > 0 {
			logf("benchmarks: building plugins: %s", strings.Join(langs, ", "))
			if guests, err = buildGuests(ctx, repo, tmp, langs); err != nil {
				return err
			}
			rep.Guests = describeGuests(guests)
		}
	}

	// Start the upstream and the contenders.
	cs := map[string]*contender{}
	var up *proc
	if len(wanted) > 0 {
		if up, err = startUpstream(e, o.upstream, o.portBase+portUpstream, o.portBase+portVerify); err != nil {
			return err
		}
		if cs, err = e.startContenders(wanted, o.portBase, up, guests, rep); err != nil {
			return err
		}
	}
	pick := func(names []string) []*contender {
		var out []*contender
		for _, n := range names {
			if c, ok := cs[n]; ok {
				out = append(out, c)
			}
		}
		return out
	}

	if main := pick(mainContenders); o.wantsWrkBench && !o.pluginsOnly && len(main) > 0 {
		s, err := e.wrkRounds(ctx, "proxy", main, o.conns, o, clk)
		if err != nil {
			return err
		}
		rep.Samples = append(rep.Samples, s...)
		rep.Notes = append(rep.Notes, errorNotes(s)...)
		rep.ProxyRows = summarize(s, "proxy", names(main), o.conns, []string{kindNginx, kindHAProxy})
		for _, n := range ceilingNotes(rep.ProxyRows) {
			logf("benchmarks: %s", n)
			rep.Notes = append(rep.Notes, n)
		}
		rep.Notes = append(rep.Notes, notComparableNotes(s)...)
		fmt.Println(proxyTable(rep.ProxyRows))
		if err := writeChart(filepath.Join(o.out, "chart.png"), rep.ProxyRows); err != nil {
			return err
		}
		rep.Chart = "chart.png"
	}
	if pl := pick(pluginContenders); o.wantsWrkBench && o.plugins && len(pl) > 1 {
		s, err := e.wrkRounds(ctx, "plugins", pl, []int{o.pluginConns}, o, clk)
		if err != nil {
			return err
		}
		rep.Samples = append(rep.Samples, s...)
		rep.Notes = append(rep.Notes, errorNotes(s)...)
		rep.PluginRows = summarize(s, "plugins", names(pl), []int{o.pluginConns}, []string{kindSluice})
		rep.Notes = append(rep.Notes, notComparableNotes(s)...)
		fmt.Println(pluginTable(rep.PluginRows))
	} else if o.wantsWrkBench && o.plugins {
		rep.Notes = append(rep.Notes, "plugin-chain benchmark skipped: it needs Sluice and at least one built plugin")
	}
	// Free the CPUs for the streaming benchmark.
	for _, c := range cs {
		if c.Kind != kindDirect {
			procs.Stop(c.proc)
		}
	}
	if up != nil {
		procs.Stop(up)
	}
	if wantStream {
		rep.Settings = append(rep.Settings, fmt.Sprintf("streams: %v concurrent SSE streams of %d tokens, %v apart; the proxytest upstream and the stream client are helper processes sharing the load CPU; Sluice (max_concurrent_requests and max_batch_size = streams + 64) is started afresh for each run",
			o.streams, o.streamTokens, o.streamDelay))
		res, notes, err := e.streamBench(ctx, o, nofile)
		rep.Notes = append(rep.Notes, notes...)
		if err != nil {
			return err
		}
		rep.Streams = res
		fmt.Println(streamTable(res))
	}
	if gs := goals(rep); len(gs) > 0 {
		fmt.Println(goalsTable(gs))
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("load average (1 min) at the start %s, at the end %s: other work on the machine shows here, and in the core-busy column", loadStart, loadAverage()))
	path, err := rep.write(o.out)
	if err != nil {
		return err
	}
	logf("benchmarks: wrote %s", path)
	return nil
}

// startContenders makes and starts each wanted contender (direct is the
// upstream up). Plugin contenders whose guest was not built are skipped
// with a note; any other failure to start is an error. What was started
// is recorded in rep.
func (e *env) startContenders(wanted []string, portBase int, up *proc, guests map[string]*guest, rep *report) (map[string]*contender, error) {
	cs := map[string]*contender{}
	for _, name := range wanted {
		spec := contenderSpec[name]
		c := &contender{Name: name, Kind: spec.kind, Port: portBase + spec.port}
		switch {
		case spec.kind == kindDirect:
			c.proc = up
		case spec.kind == kindSluice && e.sluiceBin == "":
			continue
		case spec.lang != "":
			g := guests[spec.lang]
			if g == nil || g.Path == "" {
				why := "not built"
				if g != nil {
					why = g.Skip
				}
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s skipped: %s plugin: %s", name, guestLabel[spec.lang], why))
				logf("benchmarks: %s", rep.Notes[len(rep.Notes)-1])
				continue
			}
			var err error
			if c.Plugins, err = pluginChain(g, spec.chain); err != nil {
				return nil, err
			}
		}
		logf("benchmarks: starting %s on 127.0.0.1:%d", name, c.Port)
		if err := e.start(c); err != nil {
			return nil, err
		}
		cs[name] = c
		if c.Command != "" {
			rep.Started = append(rep.Started, startedContender{Name: name,
				Command: strings.ReplaceAll(c.Command, e.tmp, "<tmp>"), Config: strings.ReplaceAll(c.Config, e.tmp, "<tmp>")})
		}
	}
	return cs, nil
}

func names(cs []*contender) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// sortedByTable sorts contender names in contenderNames order.
func sortedByTable(ns []string) []string {
	slices.SortFunc(ns, func(a, b string) int {
		return slices.Index(contenderNames, a) - slices.Index(contenderNames, b)
	})
	return ns
}

// buildSluice builds cmd/sluice into dir. It returns an empty path and the
// reason when cmd/sluice has no main.go yet, and an error when it does but
// does not build.
func buildSluice(ctx context.Context, repo, dir string) (bin, why string, err error) {
	if _, err := os.Stat(filepath.Join(repo, "cmd", "sluice", "main.go")); err != nil {
		return "", "cmd/sluice/main.go does not exist yet", nil
	}
	bin = filepath.Join(dir, "sluice")
	logf("benchmarks: go build -o %s ./cmd/sluice", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("benchmarks: go build ./cmd/sluice: %w\n%s", err, tail(string(out), 3000))
	}
	return bin, "", nil
}

// startUpstream starts the upstream on port, pinned to the load CPU: nginx
// answering `return 200` (kind "nginx"; issue 12: an upstream that is never
// the bottleneck) or the fasthttp helper (kind "fasthttp"). Behind nginx
// the fasthttp helper also runs, on verifyPort, answering only the
// verification path (verifyPath), where it counts the bench headers the
// plugins added. The returned proc is the one `direct` charges.
func startUpstream(e *env, kind string, port, verifyPort int) (*proc, error) {
	if err := checkPort(port); err != nil {
		return nil, err
	}
	helperPort := port
	if kind == upstreamNginx {
		helperPort = verifyPort
		if err := checkPort(helperPort); err != nil {
			return nil, err
		}
	}
	cmd, err := selfCommand(e.pinLoad, "upstream", "-addr", "127.0.0.1:"+strconv.Itoa(helperPort))
	if err != nil {
		return nil, err
	}
	p, err := e.procs.Start("upstream", cmd)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://127.0.0.1:"+strconv.Itoa(helperPort)+"/", 200, readyTimeout, p); err != nil {
		return nil, err
	}
	if kind != upstreamNginx {
		return p, nil
	}
	dir := filepath.Join(e.tmp, "nginx-upstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxUpstreamConf(dir, port, verifyPort, e.maxConns)), 0o644); err != nil {
		return nil, fmt.Errorf("benchmarks: %w", err)
	}
	np, err := e.procs.Start("nginx upstream", pinned(e.pinLoad, "nginx", "-e", "stderr", "-p", dir, "-c", conf))
	if err != nil {
		return nil, err
	}
	if err := waitHTTP("http://127.0.0.1:"+strconv.Itoa(port)+verifyPath, 200, readyTimeout, np); err != nil {
		return nil, fmt.Errorf("%w\nnginx upstream output:\n%s", err, tail(np.Output(), 2000))
	}
	return np, nil
}

// wrkRounds runs the interleaved rounds of one benchmark: after a warm-up,
// round r runs, for each connection count, every contender once, starting
// with contender r mod n. Each run records wrk's numbers and the CPU the
// contender used.
func (e *env) wrkRounds(ctx context.Context, bench string, cs []*contender, conns []int, o options, clk float64) ([]sample, error) {
	if o.warmup > 0 {
		for _, cn := range conns {
			for _, c := range cs {
				logf("benchmarks: %s warm-up c=%d %s", bench, cn, c.Name)
				if _, _, err := runWrk(ctx, e.pinLoad, cn, o.warmup, c.URL()); err != nil {
					return nil, err
				}
			}
		}
	}
	var out []sample
	for r := 0; r < o.rounds; r++ {
		for _, cn := range conns {
			for i := range cs {
				c := cs[(i+r)%len(cs)]
				s, err := e.measure(ctx, c, cn, o.duration, clk)
				if err != nil {
					return nil, err
				}
				s.Bench, s.Round, s.Order = bench, r, i
				logf("benchmarks: %s round %d/%d c=%d %-13s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  CPU %6.1f µs/req  busy %s / core %s%s%s",
					bench, r+1, o.rounds, cn, c.Name, s.Wrk.RPS, ms(s.Wrk.P50), ms(s.Wrk.P99), s.CPUPerReq,
					pct(s.ProcBusy), pct(s.CoreBusy), ncNote(s), errNote(s.Wrk))
				if (s.Wrk.Errors() > 0 || s.Wrk.Requests == 0) && s.Log != "" {
					logf("benchmarks: %s wrote during that run:\n%s", c.Name, s.Log)
				}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// errorNotes lists the runs that saw socket errors or non-2xx answers,
// with what the contender logged meanwhile.
func errorNotes(samples []sample) []string {
	var notes []string
	for _, s := range samples {
		if s.Wrk.Errors() == 0 && s.Wrk.Requests > 0 {
			continue
		}
		n := fmt.Sprintf("%s round %d c=%d %s: socket errors connect %d, read %d, write %d, timeout %d; non-2xx %d of %d requests",
			s.Bench, s.Round+1, s.Conns, s.Contender, s.Wrk.ConnectErrors, s.Wrk.ReadErrors, s.Wrk.WriteErrors, s.Wrk.Timeouts, s.Wrk.Non2xx, s.Wrk.Requests)
		if s.Wrk.Requests == 0 {
			n += " (no request completed within the run: the contender stalled)"
		}
		if s.Log != "" {
			n += fmt.Sprintf("; it logged: `%s`", strings.ReplaceAll(headTail(s.Log, 400, 200), "\n", " ⏎ "))
		}
		notes = append(notes, n)
	}
	return notes
}

// measure runs wrk once against c and charges c's CPU time to it.
func (e *env) measure(ctx context.Context, c *contender, conns int, d time.Duration, clk float64) (sample, error) {
	s := sample{Contender: c.Name, Conns: conns}
	if c.proc.Exited() {
		return s, fmt.Errorf("benchmarks: %s has exited: %v\n%s", c.Name, c.proc.err, tail(c.proc.Output(), 2000))
	}
	mark := c.proc.output.Written()
	core0, coreErr := e.proxyCoreTicks()
	t0, err := treeTicks(c.pid())
	if err != nil {
		return s, err
	}
	w0 := time.Now()
	res, _, err := runWrk(ctx, e.pinLoad, conns, d, c.URL())
	if err != nil {
		return s, err
	}
	wall := time.Since(w0)
	t1, err := treeTicks(c.pid())
	if err != nil {
		return s, fmt.Errorf("benchmarks: %s during wrk: %w\n%s", c.Name, err, tail(c.proc.Output(), 2000))
	}
	core1, coreErr1 := e.proxyCoreTicks()
	s.CoreBusy = -1
	if coreErr == nil && coreErr1 == nil && c.Kind != kindDirect {
		s.CoreBusy = busyBetween(core0, core1)
	}
	s.Wrk = res
	if res.Errors() > 0 || res.Requests == 0 {
		s.Log = headTail(strings.TrimSpace(c.proc.output.Since(mark)), 700, 500)
	}
	s.CPUMicros = float64(t1-t0) * 1e6 / clk
	if res.Requests > 0 {
		s.CPUPerReq = s.CPUMicros / float64(res.Requests)
	}
	// wrk's own start-up and exit are inside wall, so a saturated proxy
	// reads a little under 100 %.
	s.ProcBusy = s.CPUMicros / float64(wall.Microseconds())
	judge(&s, c.Kind)
	return s, nil
}

func errNote(r WrkResult) string {
	if r.Requests == 0 {
		return "  STALLED: no request completed"
	}
	if r.Errors() == 0 {
		return ""
	}
	return fmt.Sprintf("  ERRORS: %d socket, %d non-2xx", r.Errors()-r.Non2xx, r.Non2xx)
}

// gitRev returns " at commit <sha>" (with "+ local changes" when the tree
// is dirty) or "" when git cannot tell.
func gitRev(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := " at commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repo, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		rev += " + local changes"
	}
	return rev
}
