package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/benchmarks/fleet/workload"
)

// fleetResult is the outcome of one streamed request, in wall time.
type fleetResult struct {
	Sent      time.Duration // from the start of the run
	TTFT      time.Duration // to the first token event; 0 when none came
	E2E       time.Duration // to the end of the stream
	OutTokens int           // usage.completion_tokens, else the token events
	Text      string        // the answer
	Err       string        // "" on success
}

// chatBody is the JSON of one streamed chat completion.
func chatBody(model string, msgs []workload.Message, maxTokens int) ([]byte, error) {
	return json.Marshal(map[string]any{
		"model": model, "messages": msgs, "max_tokens": maxTokens,
		"stream": true, "stream_options": map[string]any{"include_usage": true},
	})
}

// sseChunk is what the client reads of a chat.completion.chunk.
type sseChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// readChatStream reads an OpenAI chat completion stream from r. It calls
// first when the first event carrying content arrives, and returns the
// answer, the completion tokens (from the usage chunk, else the count of
// content events) and an error for a malformed stream, an error event, or
// a stream that ends without [DONE].
func readChatStream(r io.Reader, first func()) (text string, tokens int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var b strings.Builder
	events, usage := 0, -1
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		data := bytes.TrimSpace(line[len("data:"):])
		if string(data) == "[DONE]" {
			if usage >= 0 {
				tokens = usage
			} else {
				tokens = events
			}
			return b.String(), tokens, nil
		}
		var c sseChunk
		if err := json.Unmarshal(data, &c); err != nil {
			return "", 0, fmt.Errorf("bad SSE event %q: %w", tail(string(data), 200), err)
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return "", 0, fmt.Errorf("error event: %s", tail(string(c.Error), 300))
		}
		if c.Usage != nil {
			usage = c.Usage.CompletionTokens
		}
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			if events == 0 && first != nil {
				first()
			}
			events++
			b.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, err
	}
	return "", 0, errors.New("stream ended without [DONE]")
}

// sendChat sends one streamed chat completion to url and measures it from
// start (the run's origin).
func sendChat(ctx context.Context, hc *http.Client, url string, body []byte, start time.Time) fleetResult {
	t0 := time.Now()
	res := fleetResult{Sent: t0.Sub(start)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		res.Err = err.Error()
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		res.Err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		return res
	}
	text, n, err := readChatStream(resp.Body, func() { res.TTFT = time.Since(t0) })
	res.E2E = time.Since(t0)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Text, res.OutTokens = text, n
	return res
}

// withAnswers returns r's messages with the placeholder of each earlier
// round's answer replaced by that round's real answer (answer(turn); ""
// keeps the placeholder): a multi-turn round carries what the engine
// really said. Other requests' messages are returned as they are.
func withAnswers(r workload.Request, answer func(turn int) string) []workload.Message {
	if r.Kind != workload.KindMultiTurn || r.Turn == 0 {
		return r.Messages
	}
	msgs := append([]workload.Message(nil), r.Messages...)
	for k, turn := 0, 0; k < len(msgs); k++ {
		if msgs[k].Role == workload.RoleAssistant {
			if a := answer(turn); a != "" {
				msgs[k].Content = a
			}
			turn++
		}
	}
	return msgs
}

// runFleetLoad sends reqs to url through a workload.Dispatcher at the
// ticks of a Poisson process of rate requests per simulated second (seed;
// simulated time runs timeScale times faster than the wall) and returns
// one result per request, in the order of reqs. A session's round is ready
// once its previous round has finished, and its history carries the real
// answers of the earlier rounds in place of the workload's placeholders.
// Requests not sent when ctx is done (or all of them, for requests the
// dispatcher rejects) get an error result.
func runFleetLoad(ctx context.Context, url, model string, reqs []workload.Request, rate float64, seed int64, timeScale float64) []fleetResult {
	results := make([]fleetResult, len(reqs))
	start := time.Now()
	d, err := workload.NewDispatcher(reqs, workload.WallClock(start, timeScale))
	if err != nil {
		for i := range results {
			results[i].Err = err.Error()
		}
		return results
	}
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, DisableCompression: true, IdleConnTimeout: 30 * time.Second,
	}}
	defer hc.CloseIdleConnections()
	type turnKey struct{ session, turn int }
	var mu sync.Mutex
	answers := map[turnKey]string{}
	sent := make([]bool, len(reqs))
	var wg sync.WaitGroup
	err = d.Run(ctx, rate, seed, func(i int, _ time.Duration) {
		sent[i] = true
		r := reqs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.Done(i) // after the answer is stored, for the next round
			mu.Lock()
			msgs := withAnswers(r, func(turn int) string { return answers[turnKey{r.Group, turn}] })
			mu.Unlock()
			body, err := chatBody(model, msgs, r.MaxTokens)
			if err != nil {
				results[i] = fleetResult{Err: err.Error()}
				return
			}
			res := sendChat(ctx, hc, url, body, start)
			if r.Kind == workload.KindMultiTurn {
				mu.Lock()
				answers[turnKey{r.Group, r.Turn}] = res.Text
				mu.Unlock()
			}
			results[i] = res
		}()
	})
	wg.Wait()
	for i := range results {
		if !sent[i] {
			results[i] = fleetResult{Err: "not sent: " + fmt.Sprint(err)}
		}
	}
	return results
}
