package sim_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sluice-proxy/sluice/sim"
)

// Start a simulated engine behind httptest, ten times faster than real
// time, and ask it for a four-token completion.
func Example() {
	e, err := sim.New(sim.Config{TimeScale: 10})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt":"The capital of France is","max_tokens":4,"ignore_eos":true}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	i := strings.Index(string(body), `"choices"`)
	fmt.Println(resp.StatusCode, string(body[i:]))
	st := e.Stats()
	fmt.Println("prompt tokens:", st.PromptTokens, "generated:", st.GenerationTokens)
	// Output:
	// 200 "choices":[{"index":0,"text":"was its day the ","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}
	// prompt tokens: 6 generated: 4
}
