package proxytest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

func ExampleNewServer() {
	srv := proxytest.NewServer(proxytest.Options{Tokens: 3, Name: "upstream-a"})
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var reply struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q from %s, %d tokens\n", reply.Choices[0].Message.Content,
		resp.Header.Get(proxytest.HeaderUpstreamName), reply.Usage.CompletionTokens)
	fmt.Println("requests:", srv.Requests(), "last path:", srv.LastRequest().Path)
	// Output:
	// "tok0 tok1 tok2 " from upstream-a, 3 tokens
	// requests: 1 last path: /v1/chat/completions
}

func ExampleServer_SetFailMode() {
	srv := proxytest.NewServer(proxytest.Options{Tokens: 4, FailAfterTokens: 2})
	defer srv.Close()
	srv.SetFailMode(proxytest.FailResetMidStream)

	resp, err := http.Post(srv.URL+"/generate_stream", "application/json",
		strings.NewReader(`{"inputs":"hi"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	events := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			events++
		}
	}
	fmt.Println("status:", resp.StatusCode, "events:", events, "stream broken:", sc.Err() != nil)
	// Output: status: 200 events: 2 stream broken: true
}

func ExampleServer_SetEngineMetrics() {
	srv := proxytest.NewServer(proxytest.Options{Model: "llama"})
	defer srv.Close()
	if err := srv.SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 4, Running: 2, KVCacheUsage: 0.5}); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "vllm:") {
			fmt.Println(line)
		}
	}
	// Output:
	// vllm:num_requests_running{model_name="llama"} 2.0
	// vllm:num_requests_waiting{model_name="llama"} 4.0
	// vllm:kv_cache_usage_perc{model_name="llama"} 0.5
}
