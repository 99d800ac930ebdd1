package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 5 || o.duration != 5*time.Second || !slices.Equal(o.conns, []int{50, 256}) || o.out != "benchmarks" ||
		!o.plugins || o.skipStream || !slices.Equal(o.streams, []int{1000, 10000}) || !o.wantsWrkBench {
		t.Fatalf("defaults %+v", o)
	}
	if !o.selected(kindNginx) {
		t.Fatal("no filter must select everything")
	}
	if o.pluginCost || !slices.Equal(o.costConns, []int{1, 8, 32}) {
		t.Fatalf("plugin-cost defaults %v %v", o.pluginCost, o.costConns)
	}
	o, err = parseFlags([]string{"-rounds", "3", "-duration", "2s", "-conns", "10, 20", "-contenders", "nginx,sluice", "-stream-only"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 3 || !slices.Equal(o.conns, []int{10, 20}) || !o.selected(kindSluice) || o.selected(kindHAProxy) || o.wantsWrkBench {
		t.Fatalf("parsed %+v", o)
	}
	if o.commandLine != "go run ./benchmarks -rounds 3 -duration 2s -conns 10, 20 -contenders nginx,sluice -stream-only" {
		t.Fatalf("command line %q", o.commandLine)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		_, err := parseFlags(args)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("parseFlags(%q): %v, want an error containing %q", args, err, want)
		}
	}
	f("-rounds is 2", "-rounds", "2")
	f("whole number of seconds", "-duration", "1500ms")
	f("whole number of seconds", "-duration", "0s")
	f("-warmup", "-warmup", "500ms")
	f(`"x" is not a positive integer`, "-conns", "50,x")
	f(`"0" is not a positive integer`, "-streams", "0")
	f(`unknown contender "envoy"`, "-contenders", "nginx,envoy")
	f("exclude each other", "-stream-only", "-skip-stream")
	f("exclude each other", "-stream-only", "-plugins-only")
	f("-port-base", "-port-base", "80")
	f("unexpected arguments", "extra")
	f("-stream-tokens", "-stream-tokens", "0")
	f("exclude each other", "-fleet", "-plugin-cost")
	f(`"0" is not a positive integer`, "-plugin-cost-conns", "1,0")
}

func TestMissingToolsMessage(t *testing.T) {
	msg := missingError{[]string{"wrk", "haproxy"}}.Error()
	for _, want := range []string{"missing wrk, haproxy", "apt-get install wrk nginx haproxy", "-skip-missing"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	if !strings.Contains(installHint([]string{"taskset"}), "util-linux") {
		t.Fatal("taskset hint lacks util-linux")
	}
	t.Setenv("PATH", t.TempDir())
	o, _ := parseFlags([]string{"-contenders", "sluice,nginx"})
	got := missingTools(&o, 2)
	if !slices.Equal(got, []string{"wrk", "nginx", "taskset"}) {
		t.Fatalf("missing with empty PATH and nginx selected: %q", got)
	}
	o, _ = parseFlags([]string{"-stream-only"})
	if got := missingTools(&o, 1); len(got) != 0 {
		t.Fatalf("stream-only on one CPU needs nothing, got %q", got)
	}
}

func TestFindRepo(t *testing.T) {
	root, err := findRepo("..")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(root, "/") {
		t.Fatalf("not absolute: %q", root)
	}
	if _, err := findRepo(t.TempDir()); err == nil {
		t.Fatal("a directory without go.mod accepted")
	}
}

func TestRaiseNoFileAndCPUs(t *testing.T) {
	if raiseNoFile() < 64 {
		t.Fatal("open-file limit implausibly low")
	}
	if len(allowedCPUs()) < 1 {
		t.Fatal("no allowed CPUs")
	}
	if clockTicks() <= 0 {
		t.Fatal("no clock ticks")
	}
}
