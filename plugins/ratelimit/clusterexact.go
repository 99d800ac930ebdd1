//go:build wasip1

package main

import "github.com/sluice-proxy/sluice/plugins/sdk"

// admitExact is admit for sync: per_request: the request pauses while
// Redis checks and counts it (checkScript); the reply resumes it or
// answers 429. A Redis failure decides by on_cluster_error, as in the
// default mode.
func (s *stream) admitExact(cost int64) sdk.Action {
	c, _, now, err := loadClusterState(s.key)
	if err != nil {
		return s.stateFailure("reading the cluster counts", err)
	}
	win := c.at(now).win
	s.win = win // the window the check counts in
	_, err = sdk.DispatchRedisCall(s.p.cfg.cluster.redis, checkCommand(s.key, win, s.lim, cost), func(status, size int) {
		var admitted bool
		var total [2]int64
		reply, err := redisReply(status, size)
		if err == nil {
			admitted, total, err = parseCheckReply(reply)
		}
		if serr := sdk.SetEffectiveContext(s.id); serr != nil {
			sdk.LogWarnf("ratelimit: the request ended while Redis checked it: %v", serr)
			return
		}
		if s.exactDone(cost, admitted, total, err) == sdk.ActionContinue {
			if rerr := sdk.ResumeHttpRequest(); rerr != nil {
				sdk.LogWarnf("ratelimit: resuming the request: %v", rerr)
			}
		}
	})
	if err != nil {
		return s.exactDone(cost, false, [2]int64{}, err)
	}
	return sdk.ActionPause
}

// exactDone applies a per-request check's outcome.
func (s *stream) exactDone(cost int64, admitted bool, total [2]int64, err error) sdk.Action {
	p := s.p
	if err != nil {
		p.syncDone(nil, nil, err)
		return s.admitCluster(cost) // p.down is set: on_cluster_error decides
	}
	p.syncDone(nil, nil, nil)
	var d decision
	uerr := p.updateState(s.key, func(c clusterState, now int64) clusterState {
		c, d = c.checked(now, s.lim, cost, admitted, total)
		return c
	})
	if uerr != nil {
		sdk.LogWarnf("ratelimit: recording a per-request check: %v", uerr)
		_, d = clusterState{}.checked(0, s.lim, cost, admitted, total)
	}
	if !admitted {
		return s.refuse(d)
	}
	s.admitted, s.charged, s.dec = true, cost, d
	p.m.admitted.Inc(1)
	return sdk.ActionContinue
}
