package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// ceilingTimeScale is the engines' time scale for the hit-rate ceiling's
// replay: only the prefix-cache counters are read, so simulated time may
// run as fast as the engines keep up.
const ceilingTimeScale = 200

// hitBounds are the prefix-cache hit rates of a workload sent one request
// at a time (no queueing, no preemption) to fresh engines:
//   - Grouped: every request of a shared-prefix group to one engine
//     (group mod n). With the groups' prefixes fitting that engine's cache,
//     every request hits all that any earlier request could have cached for
//     it, so no router reaches more on this workload, at any rate, without
//     preemptions (a preempted request queries its own prompt again);
//   - RoundRobin: request i of the run's order to engine i mod n, round
//     robin's assignment without its evictions under load.
type hitBounds struct {
	Grouped    float64 `json:"grouped"`
	RoundRobin float64 `json:"round_robin"`
}

// sharedPrefixHitBounds replays the first maxRequests requests of the
// shared-prefix workload wl (seed as in the runs) on n fresh engines of
// configuration c, once grouped and once in round robin's assignment.
func sharedPrefixHitBounds(ctx context.Context, c fleetEngineConfig, n int, wl workload.Spec, seed int64, maxRequests int) (hitBounds, error) {
	if wl.SharedPrefix == nil {
		return hitBounds{}, fmt.Errorf("benchmarks: hit bounds: workload %s is not shared-prefix", wl.Name)
	}
	if n < 1 {
		return hitBounds{}, fmt.Errorf("benchmarks: hit bounds: %d engines", n)
	}
	reqs, err := wl.Generate(seed, maxRequests)
	if err != nil {
		return hitBounds{}, err
	}
	c.TimeScale = ceilingTimeScale
	var b hitBounds
	if b.Grouped, err = replayHitRate(ctx, c, n, reqs, func(i int) int { return reqs[i].Group % n }); err != nil {
		return hitBounds{}, err
	}
	if b.RoundRobin, err = replayHitRate(ctx, c, n, reqs, func(i int) int { return i % n }); err != nil {
		return hitBounds{}, err
	}
	return b, nil
}

// multiTurnCeiling is the hit-rate ceiling of the multi-turn workload wl:
// its first maxRequests requests (seed as in the runs) sent one at a time
// on n fresh engines of configuration c, session after session, every
// round of a session to one engine (session mod n) right after the round
// before, carrying that round's real answer. Sessions share nothing, so a
// round can hit at most what its previous round cached (its prompt and
// answer), and here it finds all of it.
func multiTurnCeiling(ctx context.Context, c fleetEngineConfig, n int, wl workload.Spec, seed int64, maxRequests int) (float64, error) {
	if wl.MultiTurn == nil {
		return 0, fmt.Errorf("benchmarks: hit ceiling: workload %s is not multi-turn", wl.Name)
	}
	if n < 1 {
		return 0, fmt.Errorf("benchmarks: hit ceiling: %d engines", n)
	}
	reqs, err := wl.Generate(seed, maxRequests)
	if err != nil {
		return 0, err
	}
	slices.SortStableFunc(reqs, func(a, b workload.Request) int { return cmp.Or(a.Group-b.Group, a.Turn-b.Turn) })
	c.TimeScale = ceilingTimeScale
	return replayHitRate(ctx, c, n, reqs, func(i int) int { return reqs[i].Group % n })
}

// replayHitRate sends reqs one at a time, in order, request i to engine
// pick(i), each multi-turn round with its session's earlier answers as
// sent (withAnswers), and returns the fleet's prefix-cache hit rate. Any
// failed request is an error: a bound computed from part of the workload
// would be wrong.
func replayHitRate(ctx context.Context, c fleetEngineConfig, n int, reqs []workload.Request, pick func(int) int) (float64, error) {
	engines, err := startFleetEngines(n, c)
	if err != nil {
		return 0, err
	}
	defer engines.Close()
	hc := &http.Client{Timeout: time.Minute}
	start := time.Now()
	type turnKey struct{ session, turn int }
	answers := map[turnKey]string{}
	for i, r := range reqs {
		msgs := withAnswers(r, func(turn int) string { return answers[turnKey{r.Group, turn}] })
		body, err := chatBody(c.Model, msgs, r.MaxTokens)
		if err != nil {
			return 0, err
		}
		res := sendChat(ctx, hc, engines.URLs[pick(i)]+"/v1/chat/completions", body, start)
		if res.Err != "" {
			return 0, fmt.Errorf("benchmarks: hit bounds: request %d: %s", i, res.Err)
		}
		if r.Kind == workload.KindMultiTurn {
			answers[turnKey{r.Group, r.Turn}] = res.Text
		}
	}
	hits, queries, err := engines.PrefixCounters()
	if err != nil {
		return 0, err
	}
	if queries <= 0 {
		return 0, fmt.Errorf("benchmarks: hit bounds: the engines counted %g prefix-cache queries", queries)
	}
	return hits / queries, nil
}
