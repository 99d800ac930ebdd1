package proxytest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSetOptionsHammer changes options from several goroutines while
// requests run, and checks every request saw one consistent snapshot: the
// default model "m<k>" always comes with k tokens.
func TestSetOptionsHammer(t *testing.T) {
	const clients, perClient = 4, 40
	s := newTestServer(t, Options{Tokens: 1, Model: "m1"})
	c := newClient(t)
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for k := 1; !stop.Load(); k++ {
				n := k%7 + 1
				s.SetOptions(Options{Tokens: n, Model: "m" + strconv.Itoa(n), Name: "w" + strconv.Itoa(w)})
				if k%3 == 0 {
					s.SetFailMode(Fail500)
				}
				s.SetHealthy(k%2 == 0)
				_ = s.SetEngineMetrics(EngineMetrics{Engine: EngineVLLM, Waiting: float64(k)})
				_ = s.Options()
				_ = s.Metrics()
				_ = s.LastRequest()
			}
		})
	}
	var ok, failed atomic.Int64
	for i := range clients {
		readers.Go(func() {
			for j := range perClient {
				id := strconv.Itoa(i*perClient + j)
				req, _ := http.NewRequest(http.MethodPost, s.URL+pathChat, strings.NewReader(`{"messages":[{"role":"user","content":"`+id+`"}]}`))
				req.Header.Set("X-Request-Id", id)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var r chatReply
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil {
					t.Errorf("request %s: %v", id, err)
					continue
				}
				if got := resp.Header.Get(HeaderRequestID); got != id {
					t.Errorf("request %s: %s %q", id, HeaderRequestID, got)
				}
				switch resp.StatusCode {
				case http.StatusInternalServerError:
					failed.Add(1)
				case http.StatusOK:
					ok.Add(1)
					if r.Model != "m"+strconv.Itoa(r.Usage.CompletionTokens) || r.SystemFingerprint == "" {
						t.Errorf("request %s saw a torn snapshot: model %q, %d tokens, fingerprint %q",
							id, r.Model, r.Usage.CompletionTokens, r.SystemFingerprint)
					}
				default:
					t.Errorf("request %s: status %d", id, resp.StatusCode)
				}
				if rr := s.LastRequest(); !strings.Contains(string(rr.Body), `"`+rr.Header.Get("X-Request-Id")+`"`) {
					t.Errorf("LastRequest body %q does not match its header %q", rr.Body, rr.Header.Get("X-Request-Id"))
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
	if got := s.Requests(); got != clients*perClient || ok.Load()+failed.Load() != got {
		t.Errorf("Requests %d, ok %d + failed %d, want %d", got, ok.Load(), failed.Load(), clients*perClient)
	}
	if s.InFlight() != 0 {
		t.Errorf("InFlight %d after all requests", s.InFlight())
	}
}
