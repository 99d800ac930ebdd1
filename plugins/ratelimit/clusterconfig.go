package main

import (
	"fmt"
	"time"
)

// ClusterConfig is the part of Config for "scope": "cluster": one limit
// shared by every replica through a Redis server of the host's redis:
// list. See README.md, "Cluster scope".
type ClusterConfig struct {
	// Scope is "local" (default: each replica, i.e. each Sluice process,
	// has its own token buckets in its shared data) or "cluster" (the
	// replicas share fixed one-minute windows counted in Redis).
	Scope string `json:"scope"`
	// Redis names the entry of the host's redis: list (or an Istio-style
	// "outbound|6379||NAME"). Default "": the only entry, when the host
	// declares exactly one.
	Redis string `json:"redis"`
	// SyncInterval is how often ("100ms", Go duration syntax) a replica
	// sends its local counts to Redis and reads the cluster totals back,
	// from proxy_on_tick, off the request path. Default "100ms"; 10ms..10s.
	SyncInterval string `json:"sync_interval"`
	// Sync is "interval" (default: counts are synced every
	// sync_interval; a request never waits on Redis; the limit may be
	// overshot, see README.md) or "per_request" (exact: each request is
	// checked and counted in Redis with one round trip while it pauses).
	Sync string `json:"sync"`
	// RedisTimeout bounds each Redis call; a call that takes longer counts
	// as a Redis failure. Default "500ms"; 10ms..10s.
	RedisTimeout string `json:"redis_timeout"`
	// OnClusterError is what a replica does while Redis cannot be
	// reached: "local" (default: enforce its share, limit / replicas,
	// at least 1, of each limit on its own counts of the window), "allow"
	// (admit everything) or "deny" (answer 503).
	OnClusterError string `json:"on_cluster_error"`
	// Replicas is the number of Sluice replicas sharing the limit, used
	// only for the "local" fallback share. Default 1 (a lone replica
	// keeps the whole limit).
	Replicas int64 `json:"replicas"`
}

// Cluster defaults.
const (
	DefaultSyncInterval = 100 * time.Millisecond
	DefaultRedisTimeout = 500 * time.Millisecond
	maxReplicas         = 10000
)

// clusterSettings is a validated ClusterConfig; on is false for local
// scope.
type clusterSettings struct {
	on       bool
	redis    string
	interval time.Duration
	timeout  time.Duration
	onError  string // "local", "allow" or "deny"
	exact    bool   // sync: per_request
	replicas int64
}

// parseCluster validates c; errors name the field.
func parseCluster(c ClusterConfig) (clusterSettings, error) {
	cs := clusterSettings{redis: c.Redis, interval: DefaultSyncInterval, timeout: DefaultRedisTimeout,
		onError: "local", replicas: 1}
	switch c.Scope {
	case "", "local":
		if c != (ClusterConfig{Scope: c.Scope}) {
			return cs, fmt.Errorf(`ratelimit: scope: the cluster options (redis, sync, sync_interval, redis_timeout, on_cluster_error, replicas) need "scope": "cluster"`)
		}
		return cs, nil
	case "cluster":
		cs.on = true
	default:
		return cs, fmt.Errorf(`ratelimit: scope: %q is not "local" or "cluster"`, c.Scope)
	}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{{"sync_interval", c.SyncInterval, &cs.interval}, {"redis_timeout", c.RedisTimeout, &cs.timeout}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 10*time.Millisecond || v > 10*time.Second {
			return cs, fmt.Errorf("ratelimit: %s: %q is not a duration in 10ms..10s", d.name, d.v)
		}
		*d.dst = v
	}
	switch c.Sync {
	case "", "interval":
	case "per_request":
		cs.exact = true
	default:
		return cs, fmt.Errorf(`ratelimit: sync: %q is not "interval" or "per_request"`, c.Sync)
	}
	switch c.OnClusterError {
	case "":
	case "local", "allow", "deny":
		cs.onError = c.OnClusterError
	default:
		return cs, fmt.Errorf(`ratelimit: on_cluster_error: %q is not "local", "allow" or "deny"`, c.OnClusterError)
	}
	switch {
	case c.Replicas < 0 || c.Replicas > maxReplicas:
		return cs, fmt.Errorf("ratelimit: replicas: %d is not in 1..%d", c.Replicas, maxReplicas)
	case c.Replicas > 0:
		cs.replicas = c.Replicas
	}
	return cs, nil
}
