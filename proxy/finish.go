package proxy

import "time"

func (rs *requestState) reset() {
	rs.guard = Guard{}
	rs.ex.reset()
	rs.resp.Reset()
	rs.resp.StreamBody = true
	rs.watch.reset()
	clear(rs.streams)
	rs.created = 0
	rs.pool, rs.ep = nil, nil
	clear(rs.tried)
	rs.tried = rs.tried[:0]
	rs.waiter.Reset()
	rs.model.reset()
	rs.usage.reset()
	rs.reqID = rs.reqID[:0]
	rs.body = rs.body[:0]
	rs.scratch = rs.scratch[:0]
	rs.status = 0
	rs.ok, rs.clientClose, rs.handedOff, rs.finished = false, false, false, false
	rs.upErr = nil
	rs.upBody, rs.upEOF, rs.filtered = nil, false, false
	rs.out, rs.outOff, rs.eosSent = rs.out[:0], 0, false
	rs.pausedAt = 0
	rs.bodyBuf = rs.bodyBuf[:0]
	rs.sseDialect, rs.tail, rs.cutErr, rs.cutOut = dialectNone, [4]byte{}, nil, nil
	rs.acc.reset()
	rs.trace.Reset()
	rs.logMethod, rs.logPath = rs.logMethod[:0], rs.logPath[:0]
}

// finish ends the request exactly once: filters' OnDone, the upstream body
// closed (which cancels an unfinished upstream request), the endpoint's
// slot (handed to a queued request if any), the admission slot, metrics
// (tokens included), the access log; then rs goes back to the pool.
func (rs *requestState) finish() {
	if rs.finished {
		return
	}
	rs.finished = true
	s := rs.srv
	for i := 0; i < rs.created; i++ {
		if st := rs.streams[i]; st != nil {
			rs.streams[i] = nil
			st.OnDone()
		}
	}
	if rs.upBody != nil && !rs.upEOF {
		rs.ok = false
	}
	_ = rs.resp.CloseBodyStream()
	rs.endUpstream()
	if rs.ep != nil {
		rs.pool.Release(rs.ep)
	}
	rs.usage.finish()
	if rs.ok {
		rs.guard.Complete()
	} else {
		rs.guard.Fail()
	}
	elapsed := time.Since(rs.start)
	s.duration.Update(elapsed.Seconds())
	s.responses.inc(rs.status)
	if s.accessLog {
		s.logAccess(rs, elapsed)
	}
	handedOff := rs.handedOff
	rs.reset()
	s.statePool.Put(rs)
	if handedOff {
		s.leave() // the hold taken at the hand-off (respond.go)
	}
}

// Close implements io.Closer: fasthttp calls it when the response is
// written or the client went away.
func (rs *requestState) Close() error {
	if rs.upEOF && rs.upErr == nil && rs.cutErr == nil {
		rs.ok = true
	}
	rs.finish()
	return nil
}
