package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
)

// waitFor polls cond for up to 5 s (generous for a loaded CI machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsync.WaitFor(t, 5*time.Second, what, cond)
}

// checkNoLeak waits for the goroutine count to return to base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Many concurrent streaming clients, a third of them hanging up early, on
// an engine small enough to queue and preempt: the finished ones get all
// their tokens, the cancelled ones free their slots and blocks, and Close
// leaves no goroutine behind.
func TestHammerStreams(t *testing.T) {
	base := runtime.NumGoroutine()
	// 16 sequences of up to 26 blocks share 160: the cache fills and
	// preempts. A quitter asks for the whole context window (~2,400
	// tokens, over a second of wall time at TimeScale 20), so it is still
	// running when it hangs up.
	e, err := New(Config{TimeScale: 20, NumBlocks: 160, MaxNumSeqs: 16, MaxBatchedTokens: 512})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const clients, tokens = 48, 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			quitter := i%3 == 0
			maxTokens := fmt.Sprintf(`,"max_tokens":%d`, tokens)
			if quitter {
				maxTokens = ""
			}
			body := fmt.Sprintf(`{"messages":[{"role":"system","content":%q},{"role":"user","content":"q%d"}],"ignore_eos":true,"stream":true%s}`,
				strings.Repeat("shared system prompt ", 10*(1+i%4)), i, maxTokens)
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			events, done := 0, false
			for sc.Scan() {
				l, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				if l == "[DONE]" {
					done = true
					break
				}
				if strings.Contains(l, `"error"`) {
					errs <- fmt.Errorf("client %d: error event %s", i, l)
					return
				}
				events++
				if quitter && events == 5 {
					cancel()
					return
				}
			}
			if !done || events != 1+tokens {
				errs <- fmt.Errorf("client %d: %d events, done %v (scan error %v)", i, events, done, sc.Err())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "every sequence to leave and free its blocks", func() bool {
		st := e.Stats()
		return st.Running == 0 && st.Waiting == 0 && st.KVUsage == 0
	})
	st := e.Stats()
	t.Logf("stats %+v", st)
	// The quitters were cancelled: none finished, and together they
	// generated less than half of what they would have uncancelled (a
	// whole context window each). How far past its 5th token a quitter
	// got before the engine saw the hang-up depends on the scheduler: at
	// TimeScale 20 a decode step is ~0.4 ms of wall time, so a loaded
	// machine easily adds a few hundred tokens per quitter (10,088 in
	// total once, against an earlier bound of 9,600); half a window each
	// is ~1,280 tokens, about half a second of stall.
	quitters := clients / 3
	if bound := (clients-quitters)*tokens + quitters*e.cfg.MaxModelLen/2; st.RequestsFinished != int64(clients-quitters) || st.GenerationTokens >= int64(bound) {
		t.Errorf("%d requests finished, %d tokens generated; want %d finished (the quitters cancelled), under %d tokens",
			st.RequestsFinished, st.GenerationTokens, clients-quitters, bound)
	}
	e.Close()
	srv.Close()
	client.CloseIdleConnections()
	checkNoLeak(t, base)
}

// Close ends requests in flight: streams with an error event (no [DONE]),
// non-streaming requests with a 503, and no goroutine is left.
func TestCloseEndsInFlight(t *testing.T) {
	base := runtime.NumGoroutine()
	e, err := New(Config{}) // real time: 1,000 tokens take seconds
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	client := &http.Client{Transport: &http.Transport{}}
	results := make(chan string, 4)
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	for i := range 4 {
		stream := i < 2
		wg.Go(func() {
			body := fmt.Sprintf(`{"prompt":"p%d","max_tokens":1000,"ignore_eos":true,"stream":%v}`, i, stream)
			resp, err := client.Post(srv.URL+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			defer resp.Body.Close()
			if !stream {
				b, _ := io.ReadAll(resp.Body)
				results <- fmt.Sprintf("%d %s", resp.StatusCode, b)
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Scan()
			started <- struct{}{}
			last := ""
			for sc.Scan() {
				if sc.Text() != "" {
					last = sc.Text()
				}
			}
			results <- last
		})
	}
	<-started
	<-started
	waitFor(t, "4 requests in the engine", func() bool { st := e.Stats(); return st.Running+st.Waiting == 4 })
	e.Close()
	e.Close() // idempotent
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.Contains(r, `"error"`) || !strings.Contains(r, "engine closed") || strings.Contains(r, "[DONE]") {
			t.Errorf("in-flight request ended with %q, want an engine-closed error", r)
		}
		if strings.HasPrefix(r, "2") {
			t.Errorf("non-streaming request got %q, want 503", r)
		}
	}
	srv.Close()
	client.CloseIdleConnections()
	checkNoLeak(t, base)
}

// A client that disconnects frees its sequence and blocks at once: the
// non-streaming request below would run for minutes of real time.
func TestDisconnectFreesSequence(t *testing.T) {
	e, srv := startServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions",
			strings.NewReader(`{"prompt":"`+strings.Repeat("x", 4000)+`","ignore_eos":true}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the request to run", func() bool { st := e.Stats(); return st.Running == 1 && st.KVUsage > 0 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request returned a response")
	}
	waitFor(t, "the sequence to be freed", func() bool { st := e.Stats(); return st.Running == 0 && st.KVUsage == 0 })
	if st := e.Stats(); st.RequestsFinished != 0 {
		t.Errorf("stats %+v: a cancelled request counted as finished", st)
	}
}

// A scheduler held off its pace for longer than maxLag forgives the
// excess and counts it in Stats.Stalled, so a benchmark can tell that its
// latencies include time the model did not spend. Holding the engine's
// lock for 300 ms mid-run stalls the step due within 6 ms by at least
// 300 − 6 − 20 ms.
func TestStallIsCounted(t *testing.T) {
	e, srv := startServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions",
			strings.NewReader(`{"prompt":"a b c","max_tokens":4000,"ignore_eos":true}`))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the request to run", func() bool { return e.Stats().Running == 1 })
	before := e.Stats().Stalled
	e.mu.Lock()
	time.Sleep(300 * time.Millisecond)
	e.mu.Unlock()
	waitFor(t, "the stall to be counted", func() bool { return e.Stats().Stalled-before >= 250*time.Millisecond })
	cancel()
	<-done
}
