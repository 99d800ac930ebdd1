//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// clusterMetrics count the cluster scope's Redis traffic
// (sluice_wasm_ratelimit_cluster_…{plugin}).
type clusterMetrics struct {
	syncs    guest.Counter // sync calls Redis answered
	errors   guest.Counter // sync calls that failed or timed out
	fallback guest.Counter // requests decided by on_cluster_error
}

func defineClusterMetrics() clusterMetrics {
	return clusterMetrics{
		syncs:    guest.NewCounter("ratelimit_cluster_syncs_total"),
		errors:   guest.NewCounter("ratelimit_cluster_errors_total"),
		fallback: guest.NewCounter("ratelimit_cluster_fallback_total"),
	}
}

// startCluster sets up Redis calls and the sync tick.
func (p *plugin) startCluster() error {
	c := p.cfg.cluster
	p.dirtyKey = "ratelimit/" + p.prefix + "/#dirty"
	p.downKey = "ratelimit/" + p.prefix + "/#redis-down"
	p.cm = defineClusterMetrics()
	if err := sdk.RedisInit(c.redis, "", "", uint32(c.timeout/time.Millisecond)); err != nil {
		return fmt.Errorf("ratelimit: redis: %q does not name an entry of the host's redis: list (%v)", c.redis, err)
	}
	return sdk.SetTickPeriodMilliSeconds(uint32(c.interval / time.Millisecond))
}

// OnTick syncs the keys with unsynced counts: the host calls it once per
// sync_interval on one of the plugin's instances. An instance whose
// previous sync is still out skips its turn.
func (p *plugin) OnTick() {
	if !p.cfg.cluster.on {
		return
	}
	if v, _, err := sdk.GetSharedData(p.downKey); err == nil {
		p.down = len(v) == 1 && v[0] == '1'
	}
	if p.syncing > 0 {
		return
	}
	batch := p.takeDirty()
	if len(batch) == 0 && p.down {
		p.sendSync(nil) // a probe: an empty batch
	}
	for len(batch) > 0 {
		n := min(len(batch), maxSyncKeys)
		p.sendSync(batch[:n:n])
		batch = batch[n:]
	}
}

// takeDirty empties the dirty list and moves each listed key's pending
// counts in flight.
func (p *plugin) takeDirty() []syncEntry {
	var keys []string
	for range p.cfg.casRetries + 1 {
		list, cas, err := sdk.GetSharedData(p.dirtyKey)
		if err != nil || len(list) == 0 {
			return nil
		}
		if err := sdk.SetSharedData(p.dirtyKey, nil, cas); err == nil {
			keys = dirtyKeys(list)
			break
		}
	}
	var batch []syncEntry
	for _, k := range keys {
		var e syncEntry
		err := p.updateState(k, func(c clusterState, now int64) clusterState {
			c = c.at(now)
			e = syncEntry{key: k, win: c.win, req: c.pendReq, tok: c.pendTok}
			c.flightReq += c.pendReq
			c.flightTok += c.pendTok
			c.pendReq, c.pendTok, c.listed = 0, 0, false
			return c
		})
		if err != nil {
			sdk.LogWarnf("ratelimit: cluster sync of %q: %v", k, err)
			continue
		}
		batch = append(batch, e)
	}
	return batch
}

// sendSync sends one batch; the reply updates the keys' cluster totals,
// a failure puts the counts back for the next sync and switches the
// replica to on_cluster_error.
func (p *plugin) sendSync(batch []syncEntry) {
	_, err := sdk.DispatchRedisCall(p.cfg.cluster.redis, syncCommand(batch), func(status, size int) {
		p.syncing--
		var totals [][2]int64
		reply, err := redisReply(status, size)
		if err == nil {
			totals, err = parseSyncReply(reply, len(batch))
		}
		p.syncDone(batch, totals, err)
	})
	if err != nil {
		p.syncDone(batch, nil, err)
		return
	}
	p.syncing++
}

// redisReply returns the reply of the Redis call whose callback runs, or
// what went wrong.
func redisReply(status, size int) ([]byte, error) {
	if status != 0 {
		_, msg, _ := sdk.GetStatus()
		return nil, fmt.Errorf("status %d (%s)", status, msg)
	}
	return sdk.GetRedisCallResponse(0, size)
}

// syncDone applies a sync's outcome to its keys and to the shared
// Redis-down flag; the instance that flips the flag logs the change.
func (p *plugin) syncDone(batch []syncEntry, totals [][2]int64, err error) {
	var relist []string
	for i, e := range batch {
		uerr := p.updateState(e.key, func(c clusterState, _ int64) clusterState {
			if err != nil {
				c = c.failed(e)
				if c.win == e.win && !c.listed && (c.pendReq != 0 || c.pendTok != 0) {
					c.listed = true
					relist = append(relist, e.key)
				}
				return c
			}
			return c.synced(e, totals[i])
		})
		if uerr != nil {
			sdk.LogWarnf("ratelimit: cluster sync of %q: %v", e.key, uerr)
		}
	}
	for _, k := range relist {
		p.listDirty(k)
	}
	down := err != nil
	if down {
		p.cm.errors.Inc(1)
	} else {
		p.cm.syncs.Inc(1)
	}
	p.down = down
	want := []byte{'0'}
	if down {
		want[0] = '1'
	}
	for range p.cfg.casRetries + 1 {
		v, cas, gerr := sdk.GetSharedData(p.downKey)
		if gerr != nil && !errors.Is(gerr, sdk.ErrNotFound) {
			return
		}
		was := len(v) == 1 && v[0] == '1'
		if was == down {
			return
		}
		if sdk.SetSharedData(p.downKey, want, cas) == nil {
			if down {
				sdk.LogWarnf("ratelimit: Redis %q unavailable, limiting with on_cluster_error %q until it answers: %v",
					p.cfg.cluster.redis, p.cfg.cluster.onError, err)
			} else {
				sdk.LogInfof("ratelimit: Redis %q answers again; cluster limits resume", p.cfg.cluster.redis)
			}
			return
		}
	}
}

// updateState applies f to key's cluster state with compare-and-swap.
func (p *plugin) updateState(key string, f func(c clusterState, now int64) clusterState) error {
	for range p.cfg.casRetries + 1 {
		c, cas, now, err := loadClusterState(key)
		if err != nil {
			return err
		}
		err = sdk.SetSharedData(key, f(c, now).encode(), cas)
		if !errors.Is(err, sdk.ErrCasMismatch) {
			return err
		}
	}
	return errors.New("too many compare-and-swap conflicts")
}

// listDirty appends key to the dirty list (the key's state already says
// listed).
func (p *plugin) listDirty(key string) {
	for range p.cfg.casRetries + 1 {
		list, cas, err := sdk.GetSharedData(p.dirtyKey)
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			break
		}
		nl, ok := dirtyAppend(list, key)
		if !ok {
			break
		}
		if err := sdk.SetSharedData(p.dirtyKey, nl, cas); !errors.Is(err, sdk.ErrCasMismatch) {
			if err == nil {
				return
			}
			break
		}
	}
	// Not listed: clear the flag so that the next request lists it.
	_ = p.updateState(key, func(c clusterState, _ int64) clusterState { c.listed = false; return c })
}

// loadClusterState reads a key's state and the host's clock; a missing
// or unreadable value is the empty state (for a missing key with the
// host's creation token as cas, as in stream.load).
func loadClusterState(key string) (clusterState, uint32, int64, error) {
	t, err := sdk.GetCurrentTime()
	if err != nil {
		return clusterState{}, 0, 0, err
	}
	val, cas, err := sdk.GetSharedData(key)
	if errors.Is(err, sdk.ErrNotFound) {
		return clusterState{}, cas, t.UnixNano(), nil
	}
	if err != nil {
		return clusterState{}, 0, 0, err
	}
	c, _ := decodeClusterState(val)
	return c, cas, t.UnixNano(), nil
}

// admitCluster is admit for cluster scope: one shared-data read and write
// on the request path, never a Redis call.
func (s *stream) admitCluster(cost int64) sdk.Action {
	p := s.p
	fallback := p.down
	if p.cfg.cluster.exact && !fallback && !s.checking {
		s.checking = true
		return s.admitExact(cost)
	}
	if fallback {
		p.cm.fallback.Inc(1)
		switch p.cfg.cluster.onError {
		case "allow":
			return sdk.ActionContinue
		case "deny":
			return guest.Reply(503, [][2]string{{"content-type", "application/json"}},
				openai.ErrorBody("The cluster rate limiter is unavailable.", "server_error", "", "rate_limiter_unavailable"))
		}
	}
	for range p.cfg.casRetries + 1 {
		c, cas, now, err := loadClusterState(s.key)
		if err != nil {
			return s.stateFailure("reading the cluster counts", err)
		}
		nc, d := c.admit(now, s.lim, cost, fallback, p.cfg.cluster.replicas)
		if !d.allowed {
			return s.refuse(d)
		}
		list := !nc.listed
		nc.listed = true
		err = sdk.SetSharedData(s.key, nc.encode(), cas)
		if errors.Is(err, sdk.ErrCasMismatch) {
			continue
		}
		if err != nil {
			return s.stateFailure("writing the cluster counts", err)
		}
		if list {
			p.listDirty(s.key)
		}
		s.admitted, s.charged, s.dec, s.win = true, cost, d, nc.win
		p.m.admitted.Inc(1)
		return sdk.ActionContinue
	}
	return s.stateFailure("updating the cluster counts", errors.New("too many compare-and-swap conflicts"))
}

// settleCluster charges the tokens settled after the response, in the
// window that admitted the request (a later window owes nothing).
func (s *stream) settleCluster(delta int64) {
	list := false
	err := s.p.updateState(s.key, func(c clusterState, now int64) clusterState {
		c, ok := c.charge(now, s.win, delta)
		if list = ok && !c.listed; list {
			c.listed = true
		}
		return c
	})
	if err != nil {
		sdk.LogWarnf("ratelimit: settling %d tokens: %v", delta, err)
		return
	}
	if list {
		s.p.listDirty(s.key)
	}
}
