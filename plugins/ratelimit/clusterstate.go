package main

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// window is the length of a cluster-scope counting window: the limits are
// per minute. Cluster scope counts fixed windows (as Envoy's reference
// rate-limit service does with its Redis backend), not token buckets: a
// counter per window adds up across replicas with one INCRBY, a bucket
// level does not.
const window = time.Minute

// clusterState is one key's cluster-scope counts for the current window
// on this replica, kept in its shared data (all instances of the plugin
// see it). seen is the cluster total Redis last answered (every replica's
// synced counts); pend counts admissions not yet sent to Redis and flight
// those sent and not yet answered; mine is everything this replica
// admitted in the window (the base of the "local" fallback). listed is
// set while the key is in the dirty list.
type clusterState struct {
	win                  int64 // window number: Unix time / window
	seenReq, seenTok     int64
	pendReq, pendTok     int64
	flightReq, flightTok int64
	mineReq, mineTok     int64
	listed               bool
}

const (
	clusterStateVersion = 2
	clusterStateSize    = 1 + 9*8 + 1
)

func (c *clusterState) fields() []*int64 {
	return []*int64{&c.win, &c.seenReq, &c.seenTok, &c.pendReq, &c.pendTok, &c.flightReq, &c.flightTok, &c.mineReq, &c.mineTok}
}

func (c clusterState) encode() []byte {
	out := make([]byte, clusterStateSize)
	out[0] = clusterStateVersion
	for i, f := range c.fields() {
		binary.LittleEndian.PutUint64(out[1+8*i:], uint64(*f))
	}
	if c.listed {
		out[clusterStateSize-1] = 1
	}
	return out
}

// decodeClusterState parses a shared-data value; ok is false for anything
// encode did not produce.
func decodeClusterState(data []byte) (clusterState, bool) {
	var c clusterState
	if len(data) != clusterStateSize || data[0] != clusterStateVersion || data[clusterStateSize-1] > 1 {
		return c, false
	}
	for i, f := range c.fields() {
		*f = int64(binary.LittleEndian.Uint64(data[1+8*i:]))
	}
	c.listed = data[clusterStateSize-1] == 1
	return c, true
}

// at returns c for the window of now: a state from an earlier window (or
// the zero state) starts empty; what it had not synced belonged to a
// window that is over. It starts unlisted too, so a key whose listing was
// lost is listed again at the next window at the latest (a key listed
// twice is synced once with its counts and once with zeros).
func (c clusterState) at(now int64) clusterState {
	w := now / int64(window)
	if c.win != w {
		return clusterState{win: w}
	}
	return c
}

// used is what the replica believes the cluster used in the window.
func (c clusterState) used() (req, tok int64) {
	return c.seenReq + c.pendReq + c.flightReq, c.seenTok + c.pendTok + c.flightTok
}

// share is a limit divided among replicas for the "local" fallback: at
// least 1 (0 stays unlimited).
func share(limit, replicas int64) int64 {
	if limit == 0 {
		return 0
	}
	return max(1, limit/replicas)
}

// admit decides one request of cost tokens against l, counting the
// cluster's use (or, with fallback, this replica's own use against its
// share), and takes it when allowed. The decision's wait is the time left
// in the window.
func (c clusterState) admit(now int64, l limits, cost int64, fallback bool, replicas int64) (clusterState, decision) {
	c = c.at(now)
	ur, ut := c.used()
	d := decision{cost: cost}
	// Too large for the whole limit: never admitted. (A request larger
	// than a fallback share only waits for Redis or the next window.)
	tooLarge := l.tpm > 0 && cost > l.tpm
	if fallback {
		l = limits{rpm: share(l.rpm, replicas), tpm: share(l.tpm, replicas)}
		ur, ut = c.mineReq, c.mineTok
	}
	left := time.Duration((c.win+1)*int64(window) - now)
	switch {
	case tooLarge:
		d.tooLarge, d.by = true, "tokens"
	case l.rpm > 0 && ur+1 > l.rpm:
		d.by, d.wait = "requests", left
	case l.tpm > 0 && cost > 0 && ut+cost > l.tpm:
		d.by, d.wait = "tokens", left
	default:
		d.allowed = true
		c.pendReq++
		c.mineReq++
		ur++
		if l.tpm > 0 {
			c.pendTok += cost
			c.mineTok += cost
			ut += cost
		}
	}
	d.wait = ceilDuration(float64(d.wait), time.Millisecond)
	if l.rpm > 0 {
		d.st.remReq, d.st.resetReq = max(0, l.rpm-ur), left
	}
	if l.tpm > 0 {
		d.st.remTok, d.st.resetTok = max(0, l.tpm-ut), left
	}
	return c, d
}

// charge adds delta tokens (negative: a refund) settled after the
// response of a request admitted in window win; ok is false (and c
// unchanged) when that window is over: a later window owes nothing.
func (c clusterState) charge(now, win, delta int64) (_ clusterState, ok bool) {
	if c.at(now).win != win {
		return c, false
	}
	c = c.at(now)
	c.pendTok += delta
	c.mineTok += delta
	return c, true
}

// syncEntry is one key of a sync: its shared-data key, window and the
// deltas sent.
type syncEntry struct {
	key      string
	win      int64
	req, tok int64
}

// redisKey is the Redis hash of a key's window: the shared-data key (the
// plugin's name and the rate-limit key) and the window number.
func redisKey(key string, win int64) string {
	return "sluice:" + key + ":" + strconv.FormatInt(win, 10)
}

// syncScript adds each key's deltas to its window's hash (fields r and t)
// and returns the totals, two integers per key. The hash expires two
// windows after its last update, so a replica whose clock is a little
// behind still finds it.
const syncScript = `local out = {}
for i, k in ipairs(KEYS) do
  out[2*i-1] = redis.call('HINCRBY', k, 'r', ARGV[2*i])
  out[2*i] = redis.call('HINCRBY', k, 't', ARGV[2*i+1])
  redis.call('PEXPIRE', k, ARGV[1])
end
return out`

// maxSyncKeys bounds the keys of one EVAL.
const maxSyncKeys = 128

// syncCommand is the EVAL of a batch.
func syncCommand(batch []syncEntry) []byte {
	args := make([]string, 0, 3+3*len(batch))
	args = append(args, "EVAL", syncScript, strconv.Itoa(len(batch)))
	for _, e := range batch {
		args = append(args, redisKey(e.key, e.win))
	}
	args = append(args, strconv.FormatInt(int64(2*window/time.Millisecond), 10))
	for _, e := range batch {
		args = append(args, strconv.FormatInt(e.req, 10), strconv.FormatInt(e.tok, 10))
	}
	return sdk.RedisCommand(args...)
}

// parseSyncReply reads the totals of a batch of n keys from the EVAL's
// RESP reply.
func parseSyncReply(reply []byte, n int) ([][2]int64, error) {
	v, _, err := sdk.ParseRESP(reply)
	if err != nil {
		return nil, err
	}
	if v.Kind == '-' {
		return nil, errors.New("redis: " + v.Str)
	}
	if v.Kind != '*' || len(v.Array) != 2*n {
		return nil, errors.New("the sync reply is not an array of two integers per key")
	}
	out := make([][2]int64, n)
	for i, e := range v.Array {
		if e.Kind != ':' {
			return nil, errors.New("the sync reply holds a non-integer")
		}
		out[i/2][i%2] = e.Int
	}
	return out, nil
}

// synced applies the totals Redis answered for e: the deltas are no
// longer in flight and the cluster total is at least what Redis said. A
// reply for another window changes nothing.
func (c clusterState) synced(e syncEntry, total [2]int64) clusterState {
	if c.win != e.win {
		return c
	}
	c.flightReq -= e.req
	c.flightTok -= e.tok
	c.seenReq = max(c.seenReq, total[0])
	c.seenTok = max(c.seenTok, total[1])
	return c
}

// failed puts the deltas of a failed sync back in pend (they are sent
// again once Redis answers; a call that timed out may have been counted,
// so a recovery may count them twice: stricter, never looser).
func (c clusterState) failed(e syncEntry) clusterState {
	if c.win != e.win {
		return c
	}
	c.flightReq -= e.req
	c.flightTok -= e.tok
	c.pendReq += e.req
	c.pendTok += e.tok
	return c
}

// maxDirtyBytes bounds the dirty list (keys are at most ~160 bytes): a key
// that does not fit is listed by a later request.
const maxDirtyBytes = 256 << 10

// dirtyAppend adds key to the newline-separated dirty list, or reports
// false when it is full.
func dirtyAppend(list []byte, key string) ([]byte, bool) {
	if len(list)+len(key)+1 > maxDirtyBytes {
		return list, false
	}
	out := make([]byte, 0, len(list)+len(key)+1)
	out = append(append(append(out, list...), key...), '\n')
	return out, true
}

// dirtyKeys splits a dirty list (keys hold no newline: they come from
// header values).
func dirtyKeys(list []byte) []string {
	var keys []string
	for _, k := range strings.Split(string(list), "\n") {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// checkScript is sync: per_request's atomic check: it admits one request
// of ARGV[3] tokens against the limits ARGV[1] (requests) and ARGV[2]
// (tokens; 0: unlimited) when the window's hash has room, counting it,
// and returns {admitted (1 or 0), requests, tokens} after the decision.
const checkScript = `local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local lr, lt, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if (lr > 0 and r + 1 > lr) or (lt > 0 and cost > 0 and t + cost > lt) then
  return {0, r, t}
end
r = redis.call('HINCRBY', KEYS[1], 'r', 1)
t = redis.call('HINCRBY', KEYS[1], 't', cost)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, r, t}`

// checkCommand is the EVAL of one per-request check.
func checkCommand(key string, win int64, l limits, cost int64) []byte {
	return sdk.RedisCommand("EVAL", checkScript, "1", redisKey(key, win), strconv.FormatInt(l.rpm, 10),
		strconv.FormatInt(l.tpm, 10), strconv.FormatInt(cost, 10), strconv.FormatInt(int64(2*window/time.Millisecond), 10))
}

// parseCheckReply reads checkScript's answer.
func parseCheckReply(reply []byte) (admitted bool, total [2]int64, err error) {
	v, _, err := sdk.ParseRESP(reply)
	if err != nil {
		return false, total, err
	}
	if v.Kind == '-' {
		return false, total, errors.New("redis: " + v.Str)
	}
	if v.Kind != '*' || len(v.Array) != 3 || v.Array[0].Kind != ':' || v.Array[1].Kind != ':' || v.Array[2].Kind != ':' ||
		v.Array[0].Int < 0 || v.Array[0].Int > 1 {
		return false, total, errors.New("the check reply is not {0|1, requests, tokens}")
	}
	return v.Array[0].Int == 1, [2]int64{v.Array[1].Int, v.Array[2].Int}, nil
}

// checked records a per-request check of cost tokens: the cluster total
// Redis answered and, when admitted, the replica's own count (for the
// "local" fallback). The decision reports the totals against l.
func (c clusterState) checked(now int64, l limits, cost int64, admitted bool, total [2]int64) (clusterState, decision) {
	c = c.at(now)
	c.seenReq, c.seenTok = max(c.seenReq, total[0]), max(c.seenTok, total[1])
	if admitted {
		c.mineReq++
		c.mineTok += cost
	}
	// The decision is the one Redis made; admit on a copy only computes
	// the reason, the wait and the headers.
	probe := clusterState{win: c.win, seenReq: total[0], seenTok: total[1]}
	if admitted {
		probe.seenReq--
		probe.seenTok -= cost
	}
	_, d := probe.admit(now, l, cost, false, 1)
	d.allowed = admitted
	if admitted {
		d.by, d.wait = "", 0
	} else if d.by == "" {
		d.by = "requests" // Redis saw more than this replica's view
	}
	return c, d
}
