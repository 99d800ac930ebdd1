package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestAscArgs(t *testing.T) {
	got, err := ascArgs("asc assembly/index.ts -b build/plugin.wasm --use abort=abort_proc_exit --optimize", "/tmp/x.wasm")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"assembly/index.ts", "-b", "/tmp/x.wasm", "--use", "abort=abort_proc_exit", "--optimize"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"", "node x.js -b y", "asc a.ts --optimize", "asc a.ts -b"} {
		if _, err := ascArgs(bad, "o"); err == nil {
			t.Errorf("ascArgs(%q) accepted", bad)
		}
	}
}

func TestPluginChain(t *testing.T) {
	g := &guest{Lang: "go", Path: "/x/h.wasm", Config: goHeadersConfig}
	ps, err := pluginChain(g, 3)
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for i, p := range ps {
		if p.Path != "/x/h.wasm" || p.Name != "bench-go-"+string(rune('1'+i)) {
			t.Fatalf("plugin %d: %+v", i, p)
		}
		b, _ := json.Marshal(p.Config)
		configs = append(configs, string(b))
	}
	want := []string{`{"request":{"add":{"x-bench":"1"}}}`, `{"request":{"add":{"x-bench-2":"1"}}}`, `{"request":{"add":{"x-bench-3":"1"}}}`}
	if !slices.Equal(configs, want) {
		t.Fatalf("configs %q, want %q", configs, want)
	}
	if _, err := pluginChain(&guest{Lang: "c"}, 1); err == nil {
		t.Fatal("chain of an unbuilt guest accepted")
	}
}

func TestBuildGuestsSkipsAbsentSources(t *testing.T) {
	if _, err := buildGuests(context.Background(), t.TempDir(), t.TempDir(), []string{"rust"}); err == nil {
		t.Fatal("unknown guest language accepted")
	}
	gs, err := buildGuests(context.Background(), t.TempDir(), t.TempDir(), []string{"go", "c", "as"})
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"go", "c", "as"} {
		if g := gs[lang]; g == nil || g.Skip == "" || g.Path != "" {
			t.Fatalf("%s guest in an empty repo: %+v, want skipped", lang, g)
		}
	}
	if lines := strings.Join(describeGuests(gs), "\n"); !strings.Contains(lines, "Go plugin: skipped") {
		t.Fatalf("describeGuests: %q", lines)
	}
}
