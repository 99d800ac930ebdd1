package proxy

import (
	"io"
	"time"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// requestState is everything one proxied request needs, pooled per Server
// and reset between requests, so the hot path allocates nothing once warm.
// It is owned by the request's handler goroutine and, when the response
// body is streamed, by the fasthttp writer that reads it (as the body's
// io.Reader) until Close.
type requestState struct {
	srv   *Server
	guard Guard
	ex    Exchange
	resp  fasthttp.Response // upstream response
	up    upstreamConn      // the endpoint connection resp reads from
	watch clientWatch       // registration with the disconnect watcher

	streams []Stream // one per filter; nil once the filter is skipped or done
	created int      // streams[:created] were created and need OnDone

	start       time.Time
	pool        *upstream.Pool
	ep          *upstream.Endpoint   // holds a slot of ep until finish
	tried       []*upstream.Endpoint // endpoints this request was sent to
	waiter      upstream.Waiter      // this request's place in a pool's queue
	model       requestModel
	usage       usageTracker
	reqID       []byte
	body        []byte // request body
	bodyAlt     []byte // spare body buffer, for rewrites
	scratch     []byte // X-Forwarded-For and similar
	status      int
	ok          bool // outcome for the guard
	clientClose bool
	handedOff   bool // the response body stream owns finishing
	finished    bool
	upErr       error

	// response body streaming
	upBody    io.Reader
	upEOF     bool
	filtered  bool   // chunks go through the filter chain
	chunk     []byte // read buffer for filtered streams
	out       []byte // filtered output not yet handed to the client
	outOff    int
	eosSent   bool
	pausedAt  int    // first filter that paused the response body, or len(streams)
	bodyBuf   []byte // body buffered for filters at and after pausedAt
	logMethod []byte
	logPath   []byte

	// a response body cut after its head was sent (truncate.go)
	sseDialect uint8   // error event dialect; dialectNone: abort only
	tail       [4]byte // last bytes of the event stream sent
	cutErr     error   // the body failed: drain cutOut, then fail with it
	cutOut     []byte  // rest of the error event to send (shared, read-only)
}

func newRequestState(s *Server) *requestState {
	rs := &requestState{srv: s, waiter: upstream.NewWaiter()}
	rs.ex.srv = s
	rs.ex.resumeCh = make(chan struct{}, 1)
	rs.watch.initWatch(&s.watch)
	rs.resp.StreamBody = true
	if n := len(s.filters); n > 0 {
		rs.streams = make([]Stream, n)
	}
	return rs
}

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
	if s.accessLog {
		s.logAccess(rs, elapsed)
	}
	rs.reset()
	s.statePool.Put(rs)
}

// Read implements io.Reader for the response body handed to fasthttp.
func (rs *requestState) Read(p []byte) (int, error) {
	if rs.cutErr != nil {
		return rs.readCut(p)
	}
	if !rs.filtered {
		n, err := rs.upBody.Read(p)
		rs.usage.observe(p[:n])
		if err == io.EOF {
			rs.upEOF = true
			rs.usage.eof()
		} else if err != nil {
			rs.upstreamBodyFailed(err)
			return rs.cutStream(p, n, err)
		}
		rs.noteSent(p[:n])
		return n, err
	}
	n, err := rs.readFiltered(p)
	if err != nil && err != io.EOF {
		return rs.cutStream(p, n, err)
	}
	rs.noteSent(p[:n])
	return n, err
}

// upstreamBodyFailed records an error reading the upstream's body (a
// reset or idle timeout mid-response): a failure for passive ejection.
func (rs *requestState) upstreamBodyFailed(err error) {
	rs.upErr = err
	if rs.watch.gone.Load() { // the disconnect watch closed it
		return
	}
	if rs.ep != nil {
		rs.ep.RecordFailure()
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
