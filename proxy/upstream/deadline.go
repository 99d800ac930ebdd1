package upstream

import (
	"net"
	"time"
)

// Lazy deadlines (issue 12). An upstream connection's read deadline bounds
// each silence of the upstream by the request timeout, so it used to be
// moved before every Read: one runtime timer update (a lock and a timer
// heap change, 3 % of Sluice's CPU under wrk) per read, several per
// request. nginx does the same work lazily: ngx_event_add_timer leaves a
// pending timer alone when the new expiry is within NGX_TIMER_LAZY_DELAY
// (300 ms) of the old one. Sluice does likewise, but errs late rather than
// early: a deadline, when moved, is set to now + timeout + slack, and it is
// not moved again while it is still at least timeout away. So a silence is
// never cut before timeout and always by timeout + slack, and a connection
// busy with many short reads moves its deadline once per slack instead of
// once per read.

// maxDeadlineSlack caps the slack: nginx's NGX_TIMER_LAZY_DELAY.
const maxDeadlineSlack = 300 * time.Millisecond

// deadlineSlack is how late a silence of timeout may be cut: timeout/64,
// at most maxDeadlineSlack (so a 10 s timeout fires within 10.16 s, a 60 s
// one within 60.3 s).
func deadlineSlack(timeout time.Duration) time.Duration {
	return min(timeout/64, maxDeadlineSlack)
}

// lazyDeadline moves one direction's deadline of a connection lazily. It
// belongs to the connection's current user (fasthttp hands a connection to
// one request at a time), like the connection's own deadlines.
type lazyDeadline struct {
	at time.Time // the deadline now set; zero: none yet
}

// extend makes sure that a silence starting now is not cut before
// timeout, calling set (SetReadDeadline or SetWriteDeadline) only when the
// current deadline falls short of that.
func (d *lazyDeadline) extend(now time.Time, timeout time.Duration, set func(time.Time) error) error {
	want := now.Add(timeout)
	if !d.at.IsZero() && !d.at.Before(want) {
		return nil
	}
	return d.set(want.Add(deadlineSlack(timeout)), set)
}

// SetWriteTimeout bounds the next writes on conn by timeout from now. On
// a connection Sluice dialed (idleTimeoutConn) the deadline moves lazily,
// like the read deadline; on any other conn it is set as asked.
func SetWriteTimeout(conn net.Conn, timeout time.Duration) error {
	if c, ok := conn.(*idleTimeoutConn); ok {
		return c.write.extend(time.Now(), timeout, c.setWrite)
	}
	return conn.SetWriteDeadline(time.Now().Add(timeout))
}

// set sets the deadline to t now, with set, and remembers it.
func (d *lazyDeadline) set(t time.Time, set func(time.Time) error) error {
	d.at = time.Time{}
	if err := set(t); err != nil {
		return err
	}
	d.at = t
	return nil
}

// SetReadDeadline implements net.Conn; the lazy read deadline starts from
// what is set here.
func (c *idleTimeoutConn) SetReadDeadline(t time.Time) error { return c.read.set(t, c.setRead) }

// SetWriteDeadline implements net.Conn; the lazy write deadline starts
// from what is set here.
func (c *idleTimeoutConn) SetWriteDeadline(t time.Time) error { return c.write.set(t, c.setWrite) }

// SetDeadline implements net.Conn.
func (c *idleTimeoutConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
