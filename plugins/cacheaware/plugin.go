//go:build wasip1

// Command cacheaware is a Proxy-Wasm plugin that routes OpenAI requests
// sharing a prompt prefix to the endpoint that received it last, where
// the engine's prefix (KV) cache most likely still holds it, unless that
// endpoint is overloaded; otherwise it picks the least-loaded endpoint.
// See README.md.
package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/internal/prompthash"
	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("cacheaware", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	s         *settings
	idx       *index
	hashes    []uint64   // scratch, or a view into hashBuf
	hashBuf   []byte     // the host's answer to sluice.prompt_block_hashes
	eps       []endpoint // scratch: decide reorders it
	read      []endpoint // scratch: a snapshot as read, in the host's order
	spare     []*stream  // ended streams, reused by NewHttpContext
	lastPool  string     // the last request's sluice.upstream
	poolSeen  bool       // lastPool was read (or told by the host) once
	loads     loadCache
	list      []byte // scratch
	warned    bool   // the "no upstream loads" warning was logged
	slowStats bool   // the "not in the fast shape" warning was logged
	noLoads   bool   // the host lacks sluice.upstream_loads (or answers it wrongly)
	lastName  string // the pool name the last binary snapshot gave
	m         metrics

	hashArgs [8]byte // sluice.prompt_block_hashes' arguments
	// noHostHashes: the host lacks sluice.prompt_block_hashes (or
	// answered it wrongly); the plugin hashes every prompt itself.
	noHostHashes bool
	// prefixArgs are sluice.prompt_prefix_match's arguments for
	// prefixPool; recordArgs is scratch for sluice.prompt_prefix_record's.
	prefixArgs, recordArgs []byte
	prefixPool             string
	// noHostPrefix: the host lacks sluice.prompt_prefix_match (or
	// answered it wrongly); the plugin reads and writes the index's keys.
	noHostPrefix bool
	// noHostClaim: the host lacks sluice.prompt_prefix_claim (or
	// answered it wrongly); a new prefix is recorded without a claim.
	noHostClaim bool
}

// metrics are the plugin's series (sluice_wasm_cacheaware_…{plugin}).
// Counters are tallied in the guest and flushed every
// metrics_flush_period (settings.flushPeriod); the histogram is recorded
// per request.
type metrics struct {
	decisions      [numReasons]guest.Counter // …_decisions_total{reason}
	counts         [numCounts]guest.Counter  // skipped, prompt and matched blocks, write failures
	pending        tally                     // not flushed yet
	ticking        bool                      // else flush after every request
	matchHistogram sdk.Histogram             // matched blocks per request
	histOK         bool
}

// flush adds the pending counts to the host's counters.
func (m *metrics) flush() {
	m.pending.flush(func(r reason, n uint64) { m.decisions[r].Inc(n) }, func(c int, n uint64) { m.counts[c].Inc(n) })
}

// OnTick flushes the counters.
func (p *plugin) OnTick() { p.m.flush() }

// OnPluginDone flushes the counters before the plugin goes.
func (p *plugin) OnPluginDone() bool {
	p.m.flush()
	return true
}

func (p *plugin) OnPluginStart(size int) bool {
	s, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.s = s
	p.hashArgs = promptHashArgs(s.chunk, s.maxPrompt)
	p.prefixArgs = nil // holds the chunk size and threshold: hostMatch rebuilds it
	// Bound the index on the host: entries expire block_ttl after their
	// last write and a full store drops the oldest (README, "Memory").
	if err := sdk.SetSharedDataPolicy(keyPrefix, s.ttl, true); err != nil {
		sdk.LogWarnf("cacheaware: the host does not bound shared data (%v): the index keeps growing until the store is full", err)
	}
	// The plugin acts at the end of the request body only (and reads the
	// session header in the request headers): Sluice need not call it
	// for the response, at the stream's end, or, without a session
	// header, for the request headers. A bodiless request has no prompt
	// and is not counted.
	skip := []sdk.Callback{sdk.CallbackResponseHeaders, sdk.CallbackResponseBody, sdk.CallbackLog, sdk.CallbackDone}
	if s.sessionHeader == "" {
		skip = append(skip, sdk.CallbackRequestHeaders)
	}
	if err := sdk.SkipCallbacks(skip...); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("cacheaware: sluice.skip_callbacks: %v", err)
	}
	p.idx = newIndex(sharedStore{p: p})
	for r := range numReasons {
		p.m.decisions[r] = guest.NewCounter("cacheaware_decisions_total_reason=" + reasonNames[r])
	}
	p.m.counts[countSkipped] = guest.NewCounter("cacheaware_skipped_total")
	p.m.counts[countPromptBlocks] = guest.NewCounter("cacheaware_prompt_blocks_total")
	p.m.counts[countMatchedBlocks] = guest.NewCounter("cacheaware_matched_blocks_total")
	p.m.counts[countWriteFailures] = guest.NewCounter("cacheaware_index_write_failures_total")
	p.m.counts[countGuestHashed] = guest.NewCounter("cacheaware_guest_hashed_total")
	p.m.counts[countClaimsLost] = guest.NewCounter("cacheaware_claims_lost_total")
	// Each counter update is a host call (~2–5 µs for a Go guest): the
	// counts are kept in the guest and flushed on the tick. Counts of
	// the last period are lost if the plugin is unloaded without
	// OnPluginDone.
	if err := sdk.SetTickPeriodMilliSeconds(uint32(s.flushPeriod / time.Millisecond)); err != nil {
		sdk.LogWarnf("cacheaware: no tick (%v): counters are flushed after every request", err)
	} else {
		p.m.ticking = true
	}
	if h, err := sdk.DefineHistogramMetric("cacheaware_matched_blocks"); err == nil {
		p.m.matchHistogram, p.m.histOK = h, true
	}
	return true
}

// NewHttpContext returns a stream, reusing one whose request ended: an
// allocation costs a Go guest about half a microsecond.
func (p *plugin) NewHttpContext(uint32) sdk.HttpContext {
	if n := len(p.spare); n > 0 {
		s := p.spare[n-1]
		p.spare = p.spare[:n-1]
		return s
	}
	return &stream{p: p}
}

// maxSpareStreams bounds the streams an instance keeps for reuse.
const maxSpareStreams = 64

// OnHttpStreamDone puts the stream back for reuse: the SDK calls nothing
// on it afterwards.
func (s *stream) OnHttpStreamDone() {
	if p := s.p; len(p.spare) < maxSpareStreams {
		*s = stream{p: p}
		p.spare = append(p.spare, s)
	}
}

// count adds n to a counter: pending until the next tick.
func (p *plugin) count(c int, n uint64) {
	p.m.pending.counts[c] += n
	if !p.m.ticking {
		p.m.flush()
	}
}

// sharedStore is the index's store: the vm_id's shared data.
type sharedStore struct{ p *plugin }

// get and set pass the key (and value) to the host without copying them
// into a new string or slice: the host reads them during the call and
// keeps nothing, and the index does not change them meanwhile.
func (st sharedStore) get(key []byte) ([]byte, bool) {
	v, _, ok := st.getCAS(key)
	return v, ok
}

// set writes unconditionally and counts a refused write.
func (st sharedStore) set(key []byte, value string) {
	if !st.setCAS(key, value, 0) {
		st.p.m.pending.counts[countWriteFailures]++
	}
}

func (sharedStore) getCAS(key []byte) ([]byte, uint32, bool) {
	v, cas, err := sdk.GetSharedData(unsafe.String(unsafe.SliceData(key), len(key)))
	return v, cas, err == nil
}

func (sharedStore) release(value []byte) { sdk.ReleaseBytes(value) }

func (sharedStore) setCAS(key []byte, value string, cas uint32) bool {
	return sdk.SetSharedData(unsafe.String(unsafe.SliceData(key), len(key)), unsafe.Slice(unsafe.StringData(value), len(value)), cas) == nil
}

type stream struct {
	sdk.DefaultHttpContext
	p       *plugin
	session string
}

// The properties the plugin reads and sets on every request, serialized
// as sdk.SerializePropertyPath does, once.
var (
	upstreamPath = []byte("sluice\x00upstream")
	endpointPath = []byte("sluice\x00endpoint")
)

// OnHttpRequestHeaders reads the session header; without session_header
// Sluice does not call it (sluice.skip_callbacks).
func (s *stream) OnHttpRequestHeaders(_ int, eos bool) sdk.Action {
	if h := s.p.s.sessionHeader; h != "" && !eos {
		s.session, _ = sdk.GetHttpRequestHeader(h)
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpRequestBody(size int, eos bool) sdk.Action {
	if !eos {
		return sdk.ActionPause // a streaming host buffers until the end
	}
	routed := s.p.route(s, size)
	s.p.releaseHashes()
	if !routed {
		s.p.count(countSkipped, 1)
	} else if !s.p.m.ticking {
		s.p.m.flush()
	}
	return sdk.ActionContinue
}

// releaseHashes gives the host's hash answer back to the SDK for the
// next request's: a new 1 KiB buffer per request cost the guest a slow
// allocation (a new span) every seventh request, ~8 µs per request on
// average (BenchmarkPluginHot8KiB).
func (p *plugin) releaseHashes() {
	if p.hashBuf != nil {
		sdk.ReleaseBytes(p.hashBuf)
		p.hashBuf, p.hashes = nil, nil
	}
}

// route sets sluice.endpoint for the request. Whatever goes wrong, the
// request continues and the proxy balances it by its own policy.
func (p *plugin) route(s *stream, size int) bool {
	// The host hashes the prompt and looks it up in the index (one call)
	// unless the "user" field is wanted, which only the plugin reads.
	wantUser := p.s.sessionFromUser && s.session == ""
	hostIndex := !wantUser && !p.noHostPrefix
	// The request's pool is its sluice.upstream. With the host's index
	// the plugin does not read it first: it takes the last request's,
	// and the host's answer, which names the request's pool, confirms
	// the guess or corrects it (a second match). A property read costs
	// a Go guest ~2 µs (benchmarks/RESULTS.md); the pool changes only
	// when routes or an earlier plugin send requests to several.
	read := !hostIndex || !p.poolSeen
	if read && !p.readPool() {
		return false
	}
	now, _ := sdk.GetCurrentTimeNanos()
	snap := p.poolSnapshot(now)
	if snap == nil && !read {
		// The last request's pool cannot be used: is it this one's?
		if !p.readPool() {
			return false
		}
		snap = p.poolSnapshot(now)
	}
	if snap == nil {
		return false
	}
	c := choice{rnd: rand.Uint64()}
	var (
		seed           uint64
		user           []byte
		min            int
		byHost, unread bool
		guessed        bool
	)
	if hostIndex {
		var m prefixAnswer
		if m, byHost, unread, guessed = p.hostMatch(snap.name, p.eps); byHost && !guessed {
			// Another pool than the last request's: match in it.
			if snap = p.poolSnapshot(now); snap == nil {
				return false
			}
			m, byHost, unread, _ = p.hostMatch(snap.name, p.eps)
		}
		seed, c.total, min, c.matched, c.prefixOwner = m.seed, m.total, m.min, m.matched, m.owner
	}
	name, eps := snap.name, p.eps
	if !byHost {
		var ok bool
		if seed, user, ok = p.promptHashes(size, wantUser, unread); !ok {
			return false // not a completion request
		}
		c.total = len(p.hashes)
		min = p.s.minMatch(c.total)
		c.matched, c.prefixOwner = p.idx.matchIn(name, p.hashes, min, eps)
	}
	sess := s.session
	if sess == "" && p.s.sessionFromUser {
		sess = string(user)
	}
	var sessHash uint64
	if sess != "" {
		sessHash = prompthash.Mix(seed, []byte(sess))
		c.sessionOwner, _ = p.idx.session(name, sessHash, eps)
	}
	if !p.s.prefers(c) {
		p.idx.loadStarts(name, eps) // this request starts a prefix
	}
	why := p.s.decide(eps, c)
	counted, claimed := false, false
	if why == reasonLeastLoad {
		// Counted before sluice.endpoint is set, as the count may change
		// the decision; an endpoint the host then refused (the snapshot
		// holds only the pool's endpoints) would leave one start too many.
		why, counted = p.idx.commitStart(p.s, name, eps, c, now)
	}
	if why == reasonLeastLoad && byHost {
		// A new prefix is claimed, not just recorded: another instance
		// may have started the same one since the match (two requests of
		// a new conversation or system prompt at once). Then this request
		// follows it, as decide would have had its record come first, and
		// the start counted here is taken back.
		started := eps[0].key()
		r, owner, blocks := p.hostClaim(eps[0].addr, eps)
		switch {
		case r == claimMade:
			claimed = true
		case r == claimLost && owner != "" && p.s.follow(eps, owner):
			if counted {
				p.idx.undoStart(name, started, now)
			}
			why, c.prefixOwner, c.matched = reasonPrefix, owner, blocks
			p.m.pending.counts[countClaimsLost]++
		}
	}
	chosen := eps[0].addr
	p.list = p.s.endpointList(p.list[:0], eps)
	if err := sdk.SetSerializedProperty(endpointPath, p.list); err != nil {
		sdk.LogWarnf("cacheaware: setting sluice.endpoint to %q in pool %q: %v", p.list, name, err)
		return false
	}
	// A hit already recorded for the chosen endpoint needs only its new
	// blocks written; one time in eight it rewrites all, which keeps a
	// hot shared prefix (a system prompt) from expiring.
	from := 0
	if why == reasonPrefix && chosen == c.prefixOwner && c.rnd%8 != 0 {
		from = c.matched
	}
	switch {
	case claimed:
		// Written by the claim.
	case byHost && from >= c.total:
		// A repeat on its endpoint: no checkpoint past from to write.
	case byHost:
		p.hostRecord(chosen, from)
	default:
		p.idx.record(name, p.hashes, chosen, from, min)
	}
	snap.picked(chosen)
	if sess != "" {
		p.idx.recordSession(name, sessHash, chosen)
	}
	p.m.pending.decisions[why]++
	p.m.pending.counts[countPromptBlocks] += uint64(c.total)
	p.m.pending.counts[countMatchedBlocks] += uint64(c.matched)
	if p.m.histOK {
		_ = p.m.matchHistogram.Record(uint64(c.matched))
	}
	return true
}

// readPool reads the request's sluice.upstream into p.lastPool; false
// when the host refuses (logged).
func (p *plugin) readPool() bool {
	pool, err := sdk.GetSerializedProperty(upstreamPath)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("cacheaware: reading sluice.upstream: %v", err)
		return false
	}
	p.setLastPool(pool)
	sdk.ReleaseBytes(pool)
	return true
}

// setLastPool notes the request's sluice.upstream (a new string only
// when it changed).
func (p *plugin) setLastPool(pool []byte) {
	if string(pool) != p.lastPool {
		p.lastPool = string(pool)
	}
	p.poolSeen = true
}

// poolSnapshot returns the loads of the pool p.lastPool names (the
// configured pool when it names none), cached or fetched, and copies its
// endpoints into p.eps for decide to reorder; nil when the pool cannot
// be used (logged).
func (p *plugin) poolSnapshot(now int64) *poolSnapshot {
	asked := p.lastPool
	if asked == "" {
		asked = p.s.pool
	}
	snap := p.loads.get(asked, now)
	if snap == nil {
		if snap = p.snapshot(asked, now); snap == nil {
			return nil
		}
	}
	p.eps = append(p.eps[:0], snap.eps...)
	return snap
}

// snapshot fetches the loads of the pool asked for ("": the only pool)
// and caches them; nil when the pool cannot be used (logged). It reads
// them in binary (sluice.upstream_loads) and, on a host without that,
// from the sluice.upstream_stats JSON.
func (p *plugin) snapshot(asked string, now int64) *poolSnapshot {
	name, eps, ok := p.binaryLoads(asked)
	var err error
	if !ok {
		name, eps, err = p.jsonLoads(asked)
	}
	p.read = eps
	switch {
	case err != nil:
		if !p.warned {
			p.warned = true
			sdk.LogWarnf("%v; the proxy balances requests itself", err)
		}
		return nil
	case name == "":
		sdk.LogDebug("cacheaware: no pool chosen and several configured; set \"pool\" or route by model first")
		return nil
	case len(eps) == 0:
		sdk.LogDebugf("cacheaware: pool %q has no healthy endpoint", name)
		return nil
	}
	return p.loads.put(asked, name, eps, now)
}

// binaryLoads reads the pool's loads with sluice.upstream_loads; ok is
// false when the call failed (the JSON is read instead) or the host lacks
// the function or answered it wrongly (remembered: the JSON from then
// on).
func (p *plugin) binaryLoads(asked string) (name string, eps []endpoint, ok bool) {
	if p.noLoads {
		return "", p.read, false
	}
	res, err := sdk.CallForeignFunction(loadsFunc, unsafe.Slice(unsafe.StringData(asked), len(asked)))
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		p.noLoads = true
		sdk.LogInfof("cacheaware: the host has no %s; reading sluice.upstream_stats instead", loadsFunc)
		return "", p.read, false
	case err != nil: // a pool name over 1 KiB, say: the JSON has it
		return "", p.read, false
	}
	name, eps, ok = decodePoolLoads(p.read[:0], res, p.lastName)
	sdk.ReleaseBytes(res)
	if !ok {
		p.noLoads = true
		sdk.LogWarnf("cacheaware: %s answered %d malformed bytes; reading sluice.upstream_stats instead", loadsFunc, len(res))
		return "", eps[:0], false
	}
	p.lastName = name
	return name, eps, true
}

// loadsFunc is Sluice's foreign function that returns a pool's loads in
// binary (proxy.Exchange.AppendPoolLoads).
const loadsFunc = "sluice.upstream_loads"

// jsonLoads reads the pool's loads from the sluice.upstream_stats JSON.
func (p *plugin) jsonLoads(asked string) (string, []endpoint, error) {
	stats, err := sdk.CallForeignFunction("sluice.upstream_stats", nil)
	if err != nil {
		return "", p.read, fmt.Errorf("cacheaware: cannot call sluice.upstream_stats (%w)", err)
	}
	name, eps, fast, err := poolLoads(p.read[:0], stats, asked)
	if !fast && !p.slowStats {
		p.slowStats = true
		sdk.LogWarn("cacheaware: sluice.upstream_stats is not in the shape this plugin reads fast (another host version?); reading it with the validating scanner, ~150 µs a snapshot")
	}
	sdk.ReleaseBytes(stats)
	return name, eps, err
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
