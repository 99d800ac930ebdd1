//go:build !race

package upstream

import (
	"testing"
	"time"
)

// TestAllocsLazyDeadline: moving a pooled connection's deadlines allocates
// nothing.
func TestAllocsLazyDeadline(t *testing.T) {
	client, _ := tcpPair(t)
	c := newIdleTimeoutConn(client, time.Minute)
	if n := testing.AllocsPerRun(1000, func() {
		c.read.at = time.Time{} // force a real set each time
		if err := c.read.extend(time.Now(), c.timeout, c.setRead); err != nil {
			t.Fatal(err)
		}
		if err := SetWriteTimeout(c, time.Minute); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("lazy deadlines: %v allocs, want 0", n)
	}
}
