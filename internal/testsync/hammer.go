package testsync

import "sync"

// Hammer runs workers goroutines at once, each calling do(w, i) for its
// index w and i from 0 to each-1, waits for them all and returns the
// errors the calls returned (nil when none did), in no particular order.
// do must be safe for concurrent use; it is the body of a hammer test,
// whose assertions on shared state follow the call.
func Hammer(workers, each int, do func(w, i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := do(w, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// Distinct records values that must not repeat across the goroutines of
// a hammer test (each concurrent increment sees its own count). It is
// safe for concurrent use; the zero value is ready to use.
type Distinct struct {
	mu   sync.Mutex
	seen map[string]bool
}

// Add records v and reports whether it was recorded before.
func (d *Distinct) Add(v string) (dup bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = make(map[string]bool)
	}
	dup = d.seen[v]
	d.seen[v] = true
	return dup
}
