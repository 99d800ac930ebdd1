package testsync

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

func TestGrep(t *testing.T) {
	check := func(text, sub, want string) {
		t.Helper()
		if got := Grep(text, sub); got != want {
			t.Errorf("Grep(%q, %q) = %q, want %q", text, sub, got, want)
		}
	}
	check("a 1\nb 2\na 3\n", "a", "a 1\na 3")
	check("a 1\nb 2", "c", "")
	check("", "a", "")
	check("x\n\ny", "", "x\n\ny")
}

// TestHammer: every (worker, call) pair runs once, the workers run at the
// same time, and each error comes back.
func TestHammer(t *testing.T) {
	const workers, each = 4, 50
	var mu sync.Mutex
	calls := map[[2]int]int{}
	var started sync.WaitGroup
	started.Add(workers)
	errs := Hammer(workers, each, func(w, i int) error {
		if i == 0 {
			// Every worker waits here until all have started: Hammer
			// would deadlock if it ran them one after another.
			started.Done()
			started.Wait()
		}
		mu.Lock()
		calls[[2]int{w, i}]++
		mu.Unlock()
		if i%10 == 9 {
			return fmt.Errorf("worker %d call %d", w, i)
		}
		return nil
	})
	if len(calls) != workers*each {
		t.Errorf("%d distinct calls, want %d", len(calls), workers*each)
	}
	for k, n := range calls {
		if n != 1 || k[0] < 0 || k[0] >= workers || k[1] < 0 || k[1] >= each {
			t.Errorf("call %v ran %d times", k, n)
		}
	}
	if len(errs) != workers*each/10 {
		t.Errorf("%d errors returned, want %d: %v", len(errs), workers*each/10, errs)
	}
	if errs := Hammer(2, 3, func(int, int) error { return nil }); errs != nil {
		t.Errorf("no failures: got %v, want nil", errs)
	}
}

// TestDistinct: of concurrent Adds of one value exactly one is first.
func TestDistinct(t *testing.T) {
	var d Distinct
	var firsts sync.Map
	Hammer(8, 100, func(w, i int) error {
		if !d.Add(fmt.Sprint(i)) {
			if _, again := firsts.LoadOrStore(i, w); again {
				t.Errorf("value %d was new twice", i)
			}
		}
		return nil
	})
	for i := range 100 {
		if _, ok := firsts.Load(i); !ok {
			t.Errorf("value %d was never new", i)
		}
	}
}

// TestClosedAddr: the address is on loopback and refuses connections.
func TestClosedAddr(t *testing.T) {
	addr := ClosedAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("ClosedAddr() = %q (%v), want 127.0.0.1:port", addr, err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("dialing %s succeeded, want connection refused", addr)
	}
}
