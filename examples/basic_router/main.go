// Command basic_router is the TGI router's basic example in Go: it builds a
// config, marks the router ready, takes and releases slots, shows the 429
// behaviour at capacity, and prints health and metrics.
//
//	go run ./examples/basic_router
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

func main() {
	cfg := proxy.NewConfig().
		WithHostname("127.0.0.1").
		WithPort(8080).
		WithMaxConcurrentRequests(4).
		WithMaxBatchSize(32).
		WithTimeout(60*time.Second).
		WithUpstream("default", "http://127.0.0.1:8000")
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	router := proxy.NewRouter(cfg)
	printJSON("health before ready", router.Health())
	router.SetReady(true)
	printJSON("health when ready", router.Health())

	// Fill every slot; the next request is refused at once, never queued.
	var guards []*proxy.Guard
	for i := 0; i < cfg.MaxConcurrentRequests; i++ {
		g, err := router.TryAcquire()
		if err != nil {
			fmt.Fprintln(os.Stderr, "unexpected:", err)
			os.Exit(1)
		}
		guards = append(guards, g)
	}
	if _, err := router.TryAcquire(); errors.Is(err, proxy.ErrResourceExhausted) {
		fmt.Println("at capacity:", err, "→ the server answers 429 with Retry-After")
	}
	printJSON("health at capacity", router.Health())

	// Finish them: two complete, one fails, one is released without an
	// outcome (counted as failed). Repeated calls are no-ops.
	guards[0].Complete()
	guards[1].Complete()
	guards[2].Fail()
	guards[3].Release()
	guards[0].Release()

	m := router.Metrics()
	fmt.Printf("metrics: total=%d completed=%d failed=%d rejected=%d success_rate=%.2f utilization=%.2f\n",
		m.Total, m.Completed, m.Failed, m.Rejected, m.SuccessRate(), m.Utilization())
}

func printJSON(label string, v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("%s: %s\n", label, b)
}
