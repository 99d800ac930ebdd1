package upstream

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// countingConn counts the deadlines set on a net.Conn.
type countingConn struct {
	net.Conn
	reads, writes int
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.reads++
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes++
	return c.Conn.SetWriteDeadline(t)
}

// TestLazyDeadlineBounds: after every extend, a silence starting then is
// cut no earlier than timeout and no later than timeout + slack, and the
// setter runs once per slack, not once per call.
func TestLazyDeadlineBounds(t *testing.T) {
	const timeout = 10 * time.Second
	slack := deadlineSlack(timeout)
	if slack != timeout/64 {
		t.Fatalf("slack %v, want timeout/64", slack)
	}
	if s := deadlineSlack(time.Hour); s != maxDeadlineSlack {
		t.Fatalf("slack of 1h %v, want the %v cap", s, maxDeadlineSlack)
	}
	var d lazyDeadline
	var set []time.Time
	setter := func(at time.Time) error { set = append(set, at); return nil }
	t0 := time.Unix(1000, 0)
	for i := 0; i < 10000; i++ { // a read every 100 µs for one second
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		if err := d.extend(now, timeout, setter); err != nil {
			t.Fatal(err)
		}
		if d.at.Before(now.Add(timeout)) || d.at.After(now.Add(timeout+slack)) {
			t.Fatalf("at %v: deadline %v outside [now+timeout, now+timeout+slack]", now.Sub(t0), d.at.Sub(t0))
		}
	}
	if want := int(time.Second/slack) + 1; len(set) > want || len(set) < want-1 {
		t.Fatalf("deadline set %d times in 1 s of reads, want about %d (once per %v)", len(set), want, slack)
	}
	// A failed set leaves no deadline believed in place.
	d = lazyDeadline{}
	boom := errors.New("boom")
	if err := d.extend(t0, timeout, func(time.Time) error { return boom }); err != boom || !d.at.IsZero() {
		t.Fatalf("failed set: %v, at %v", err, d.at)
	}
}

// TestIdleTimeoutConnMovesDeadlineLazily: 200 reads on a pooled upstream
// connection used to set the read deadline 200 times (one runtime timer
// update each); now once. A deadline set directly is honoured: the next
// read moves it again.
func TestIdleTimeoutConnMovesDeadlineLazily(t *testing.T) {
	client, server := tcpPair(t)
	cc := &countingConn{Conn: client}
	c := newIdleTimeoutConn(cc, time.Minute)
	buf := make([]byte, 1)
	for i := 0; i < 200; i++ {
		if _, err := server.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if cc.reads > 2 {
		t.Fatalf("200 reads set the read deadline %d times, want 1 (at most 2 on a starved machine)", cc.reads)
	}
	// Someone clears the deadline: the next read must set one again.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := cc.reads
	server.Write([]byte{'y'})
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if cc.reads != before+1 {
		t.Fatalf("read after a cleared deadline set it %d times, want 1", cc.reads-before)
	}
	for i := 0; i < 50; i++ {
		if err := SetWriteTimeout(c, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if cc.writes > 2 {
		t.Fatalf("50 write timeouts set the write deadline %d times, want 1", cc.writes)
	}
}

// TestIdleTimeoutConnStillTimesOut: a silent upstream is still cut, never
// before the timeout (the bound above it is generous: CI machines starve).
func TestIdleTimeoutConnStillTimesOut(t *testing.T) {
	client, server := tcpPair(t)
	const timeout = 100 * time.Millisecond
	c := newIdleTimeoutConn(client, timeout)
	buf := make([]byte, 1)
	server.Write([]byte{'x'})
	if _, err := c.Read(buf); err != nil { // sets the deadline
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Read(buf) // nothing comes
	waited := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent upstream: %v, want a deadline error", err)
	}
	if waited < timeout-deadlineSlack(timeout) {
		t.Fatalf("cut after %v, before the %v timeout", waited, timeout)
	}
	if waited > 3*time.Second {
		t.Fatalf("cut after %v, want about %v", waited, timeout)
	}
}
