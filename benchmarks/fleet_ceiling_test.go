package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

func testSharedPrefix(groups, prompts int) workload.Spec {
	return workload.Spec{Name: workload.KindSharedPrefix, SharedPrefix: &workload.SharedPrefix{
		Groups: groups, PromptsPerGroup: prompts, SystemLen: 96, QuestionLen: 8, OutputLen: 2}}
}

// The grouped replay is the ceiling: above round robin's assignment when
// a group's requests are spread, equal to it when there is one engine,
// and zero when no request shares a prefix with an earlier one.
func TestSharedPrefixHitBounds(t *testing.T) {
	ctx := context.Background()
	wl := testSharedPrefix(3, 4)
	b, err := sharedPrefixHitBounds(ctx, defaultFleetEngine, 2, wl, 1, wl.Len())
	if err != nil {
		t.Fatal(err)
	}
	// Each group's three later prompts hit their system prompt: a
	// little under 3/4 of the tokens.
	if b.Grouped < 0.5 || b.Grouped >= 0.75 || b.RoundRobin >= b.Grouped {
		t.Fatalf("grouped %.3f, round robin %.3f: want round robin < grouped in [0.5, 0.75)", b.Grouped, b.RoundRobin)
	}
	one, err := sharedPrefixHitBounds(ctx, defaultFleetEngine, 1, wl, 1, wl.Len())
	if err != nil {
		t.Fatal(err)
	}
	if one.Grouped != one.RoundRobin || one.Grouped != b.Grouped {
		t.Fatalf("one engine: grouped %.4f, round robin %.4f; want both %.4f", one.Grouped, one.RoundRobin, b.Grouped)
	}
	none := testSharedPrefix(4, 1)
	z, err := sharedPrefixHitBounds(ctx, defaultFleetEngine, 2, none, 1, none.Len())
	if err != nil {
		t.Fatal(err)
	}
	if z.Grouped != 0 || z.RoundRobin != 0 {
		t.Fatalf("nothing shared: %+v, want zeros", z)
	}
}

func TestSharedPrefixHitBoundsRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := sharedPrefixHitBounds(ctx, defaultFleetEngine, 2, fleetWorkloads[2], 1, 4); err == nil || !strings.Contains(err.Error(), "not shared-prefix") {
		t.Fatalf("random workload: %v", err)
	}
	if _, err := sharedPrefixHitBounds(ctx, defaultFleetEngine, 0, testSharedPrefix(1, 2), 1, 2); err == nil || !strings.Contains(err.Error(), "0 engines") {
		t.Fatalf("no engine: %v", err)
	}
}

// boundsAndRoomier replays the whole of wl on the fleet's 8 engines and on
// 8 with ten times the KV blocks, and returns both hit bounds. The two
// replays are independent fleets and wait on simulated time, not a core,
// so they run at once.
func boundsAndRoomier(t *testing.T, wl workload.Spec) (fleet, roomier hitBounds) {
	t.Helper()
	big := defaultFleetEngine
	big.NumBlocks *= 10
	var errs [2]error
	var wg sync.WaitGroup
	for i, c := range []fleetEngineConfig{defaultFleetEngine, big} {
		out := []*hitBounds{&fleet, &roomier}[i]
		wg.Go(func() { *out, errs[i] = sharedPrefixHitBounds(context.Background(), c, 8, wl, 1, wl.Len()) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	return fleet, roomier
}

// The fleet's own shared-prefix ceiling is the workload's, not the
// engines' cache size: with ten times the KV blocks it is the same, so
// the grouped replay evicted nothing a later request could have hit.
func TestFleetCeilingIsNotTheCache(t *testing.T) {
	b, bb := boundsAndRoomier(t, fleetWorkloads[0])
	if b.Grouped != bb.Grouped || b.Grouped < 0.5 {
		t.Fatalf("ceiling %.4f with the fleet's cache, %.4f with ten times the blocks", b.Grouped, bb.Grouped)
	}
	t.Logf("ceiling %.1f %%, round robin one at a time %.1f %% (%.1f %% with ten times the blocks)", 100*b.Grouped, 100*b.RoundRobin, 100*bb.RoundRobin)
}

// shared-prefix-64 is what it is for: its system prompts do not fit an
// engine's cache, so round robin's assignment, replayed one request at a
// time, hits much less than with ten times the blocks (it evicts what it
// would reuse), while grouping loses nothing to the cache, and the
// ceiling is more than 3× round robin's rate: the contrast with
// TestFleetCeilingIsNotTheCache.
func TestSharedPrefix64Evicts(t *testing.T) {
	var wl workload.Spec
	for _, w := range fleetOptionalWorkloads {
		if w.Name == "shared-prefix-64" {
			wl = w
		}
	}
	b, bb := boundsAndRoomier(t, wl)
	if b.Grouped != bb.Grouped || b.RoundRobin > 0.75*bb.RoundRobin || b.Grouped < 3*b.RoundRobin {
		t.Fatalf("grouped %.3f (%.3f with ten times the blocks), round robin %.3f (%.3f): want grouping unchanged, round robin under 3/4 of its rate with room, and the ceiling over 3× it", b.Grouped, bb.Grouped, b.RoundRobin, bb.RoundRobin)
	}
	t.Logf("ceiling %.1f %%, round robin one at a time %.1f %% (%.1f %% with ten times the blocks)", 100*b.Grouped, 100*b.RoundRobin, 100*bb.RoundRobin)
}

// The multi-turn ceiling: every round after a session's first hits what
// its previous round cached, the same with ten times the KV blocks; one
// round per session shares nothing; other workloads are refused.
func TestMultiTurnCeiling(t *testing.T) {
	ctx := context.Background()
	wl := workload.Spec{Name: workload.KindMultiTurn, MultiTurn: &workload.MultiTurn{Sessions: 5, Turns: 3, UserLen: 24, OutputLen: 4}}
	c, err := multiTurnCeiling(ctx, defaultFleetEngine, 2, wl, 1, wl.Len())
	if err != nil {
		t.Fatal(err)
	}
	big := defaultFleetEngine
	big.NumBlocks *= 10
	cb, err := multiTurnCeiling(ctx, big, 2, wl, 1, wl.Len())
	if err != nil {
		t.Fatal(err)
	}
	// Rounds 2 and 3 carry one and two earlier rounds: most of their
	// tokens, so well over a third of all, but under two thirds.
	if c < 0.3 || c >= 2.0/3 || c != cb {
		t.Fatalf("ceiling %.3f (%.3f with ten times the blocks), want the same, in [0.3, 0.67)", c, cb)
	}
	one := workload.Spec{Name: workload.KindMultiTurn, MultiTurn: &workload.MultiTurn{Sessions: 4, Turns: 1, UserLen: 24, OutputLen: 4}}
	if z, err := multiTurnCeiling(ctx, defaultFleetEngine, 2, one, 1, one.Len()); err != nil || z != 0 {
		t.Fatalf("one round per session: %v, %v; want 0", z, err)
	}
	if _, err := multiTurnCeiling(ctx, defaultFleetEngine, 2, fleetWorkloads[0], 1, 4); err == nil || !strings.Contains(err.Error(), "not multi-turn") {
		t.Fatalf("shared-prefix workload: %v", err)
	}
	if _, err := multiTurnCeiling(ctx, defaultFleetEngine, 0, wl, 1, 4); err == nil || !strings.Contains(err.Error(), "0 engines") {
		t.Fatalf("no engine: %v", err)
	}
}

// withAnswers puts each earlier round's real answer in its placeholder's
// place, keeps a placeholder it has no answer for, and leaves first rounds
// and other kinds alone.
func TestWithAnswers(t *testing.T) {
	asst := func(s string) workload.Message { return workload.Message{Role: workload.RoleAssistant, Content: s} }
	user := func(s string) workload.Message { return workload.Message{Role: workload.RoleUser, Content: s} }
	r := workload.Request{Kind: workload.KindMultiTurn, Group: 7, Turn: 2,
		Messages: []workload.Message{user("u0"), asst("p0"), user("u1"), asst("p1"), user("u2")}}
	got := withAnswers(r, func(turn int) string { return map[int]string{0: "real0"}[turn] })
	want := []string{"u0", "real0", "u1", "p1", "u2"}
	for i, m := range got {
		if m.Content != want[i] {
			t.Fatalf("message %d: %q, want %q", i, m.Content, want[i])
		}
	}
	if r.Messages[1].Content != "p0" {
		t.Fatal("the request's own messages were changed")
	}
	first := r
	first.Turn = 0
	other := r
	other.Kind = workload.KindSharedPrefix
	for _, q := range []workload.Request{first, other} {
		if got := withAnswers(q, func(int) string { return "x" }); &got[0] != &q.Messages[0] {
			t.Fatalf("%s turn %d: messages copied or changed", q.Kind, q.Turn)
		}
	}
}
