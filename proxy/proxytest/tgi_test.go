package proxytest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 3})
	c := newClient(t)
	f := func(body, want string, wantTokens string) {
		t.Helper()
		resp, b := do(t, c, http.MethodPost, s.URL+pathGenerate, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d body %s", resp.StatusCode, b)
		}
		if string(b) != want {
			t.Errorf("body %s\nwant %s", b, want)
		}
		if got := resp.Header.Get("X-Generated-Tokens"); got != wantTokens {
			t.Errorf("X-Generated-Tokens %q, want %q", got, wantTokens)
		}
		if got := resp.Header.Get("X-Prompt-Tokens"); got != "2" {
			t.Errorf("X-Prompt-Tokens %q, want 2", got)
		}
	}
	f(`{"inputs":"hi there"}`, `{"generated_text":"tok0 tok1 tok2 "}`, "3")
	f(`{"inputs":"hi there","parameters":null}`, `{"generated_text":"tok0 tok1 tok2 "}`, "3")
	f(`{"inputs":"hi there","parameters":{"max_new_tokens":2,"temperature":0.5}}`, `{"generated_text":"tok0 tok1 "}`, "2")
	f(`{"inputs":"hi there","parameters":{"max_new_tokens":2,"details":true}}`,
		`{"generated_text":"tok0 tok1 ","details":{"finish_reason":"length","generated_tokens":2,"seed":null}}`, "2")
	f(`{"inputs":"hi there","parameters":{"details":true}}`,
		`{"generated_text":"tok0 tok1 tok2 ","details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null}}`, "3")
}

func TestGenerateStream(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 5})
	c := newClient(t)
	f := func(body string, n int) {
		t.Helper()
		resp, err := c.Post(s.URL+pathGenStream, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
			resp.Header.Get("X-Accel-Buffering") != "no" {
			t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
		}
		events, err := readSSE(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != n {
			t.Fatalf("%d events, want %d (no [DONE]): %q", len(events), n, events)
		}
		for i, e := range events {
			var ev struct {
				Index int `json:"index"`
				Token *struct {
					ID      int      `json:"id"`
					Text    string   `json:"text"`
					Logprob *float64 `json:"logprob"`
					Special *bool    `json:"special"`
				} `json:"token"`
				GeneratedText *string          `json:"generated_text"`
				Details       *json.RawMessage `json:"details"`
			}
			if err := json.Unmarshal([]byte(e), &ev); err != nil {
				t.Fatalf("event %d %q: %v", i, e, err)
			}
			m := decode(t, []byte(e))
			if _, ok := m["generated_text"]; !ok {
				t.Errorf("event %d has no generated_text key: %s", i, e)
			}
			if ev.Token == nil || ev.Token.ID != i || ev.Token.Text != tokenText(i) || ev.Token.Logprob == nil ||
				ev.Token.Special == nil || *ev.Token.Special || ev.Index != i+1 {
				t.Errorf("event %d token: %s", i, e)
			}
			last := i == n-1
			if (ev.GeneratedText != nil) != last || (ev.Details != nil && string(*ev.Details) != "null") != last {
				t.Errorf("event %d: generated_text/details only in the last event: %s", i, e)
			}
			if last && *ev.GeneratedText != completionText(n) {
				t.Errorf("generated_text %q", *ev.GeneratedText)
			}
		}
	}
	f(`{"inputs":"x"}`, 5)
	f(`{"inputs":"x","parameters":{"max_new_tokens":1}}`, 1)
}

func TestGenerateBadRequests(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	f := func(path, body, wantInMsg string) {
		t.Helper()
		resp, b := do(t, c, http.MethodPost, s.URL+path, body)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("%s: status %d, want 422", body, resp.StatusCode)
		}
		var e struct {
			Error     string `json:"error"`
			ErrorType string `json:"error_type"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if e.ErrorType != "validation" || !strings.Contains(e.Error, wantInMsg) {
			t.Errorf("%s: %+v, want error containing %q", body, e, wantInMsg)
		}
	}
	f(pathGenerate, `{}`, "inputs: is required")
	f(pathGenerate, `{"inputs":3}`, "inputs")
	f(pathGenStream, `not json`, "not a valid JSON")
	f(pathGenStream, `{"inputs":"x","parameters":{"max_new_tokens":-2}}`, "parameters.max_new_tokens")
	f(pathGenStream, `{"inputs":"x","parameters":{"max_new_tokens":"2"}}`, "parameters.max_new_tokens")
	resp, _ := do(t, c, http.MethodGet, s.URL+pathGenerate, "")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /generate: %d", resp.StatusCode)
	}
}
