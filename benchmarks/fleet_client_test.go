package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// TestRunFleetLoadMultiTurn checks that a session's turn is sent only after
// the previous turn finished and carries the real answers of the earlier
// turns in place of the workload's placeholders.
func TestRunFleetLoadMultiTurn(t *testing.T) {
	var mu sync.Mutex
	finished := map[string]bool{} // answers already streamed in full
	var bad []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req struct {
			Messages []workload.Message `json:"messages"`
			Stream   bool               `json:"stream"`
		}
		if err := json.Unmarshal(b, &req); err != nil || !req.Stream {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		for _, m := range req.Messages {
			if m.Role == workload.RoleAssistant && !finished[m.Content] {
				bad = append(bad, m.Content)
			}
		}
		n++
		answer := fmt.Sprintf("answer-%d", n)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", answer)
		w.(http.Flusher).Flush()
		mu.Lock()
		finished[answer] = true
		mu.Unlock()
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	spec := workload.Spec{Name: "mt", MultiTurn: &workload.MultiTurn{Sessions: 3, Turns: 4, SystemLen: 5, UserLen: 3, OutputLen: 4}}
	reqs, err := spec.Generate(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A high rate: later turns would go out before earlier ones finish
	// unless the harness made them wait.
	results := runFleetLoad(context.Background(), srv.URL+"/v1/chat/completions", "m", reqs, 1e5, 1, 1)
	for i, r := range results {
		if r.Err != "" || !strings.HasPrefix(r.Text, "answer-") || r.OutTokens != 1 || r.TTFT <= 0 || r.E2E < r.TTFT {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("assistant messages that were not a finished answer: %q", bad)
	}
	if n != 12 {
		t.Fatalf("%d requests, want 12", n)
	}
}

func TestRunFleetLoadErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"no ready endpoint"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	spec := workload.Spec{Name: "r", Random: &workload.Random{Requests: 3, PromptLen: 2, OutputLen: 1}}
	reqs, _ := spec.Generate(1, 0)
	for _, r := range runFleetLoad(context.Background(), srv.URL, "m", reqs, 1e4, 1, 1) {
		if !strings.Contains(r.Err, "HTTP 503") || !strings.Contains(r.Err, "no ready endpoint") {
			t.Fatalf("error %q", r.Err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range runFleetLoad(ctx, srv.URL, "m", reqs, 1e4, 1, 1) {
		if r.Err == "" {
			t.Fatal("a cancelled run must not report success")
		}
	}
}

// TestRunFleetLoadCancelMidRun cancels a run whose requests hang in the
// server: runFleetLoad returns (its requests and the dispatcher stop) and
// every request, sent or not, reports an error.
func TestRunFleetLoadCancelMidRun(t *testing.T) {
	arrived := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server watches the connection and sees the client go
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	spec := workload.Spec{Name: "mt", MultiTurn: &workload.MultiTurn{Sessions: 4, Turns: 3, UserLen: 3, OutputLen: 2}}
	reqs, _ := spec.Generate(1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []fleetResult, 1)
	go func() { out <- runFleetLoad(ctx, srv.URL, "m", reqs, 1e4, 1, 1) }()
	<-arrived
	cancel()
	select {
	case results := <-out:
		for i, r := range results {
			if r.Err == "" {
				t.Fatalf("request %d of a cancelled run reports success", i)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runFleetLoad did not return within 30 s of the cancel")
	}
}
