package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/glob"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"sort"
)

// Config is the plugin configuration (JSON):
//
//	{"aliases": {"gpt-4o": "llama-3-70b"},
//	 "routes": [{"model": "llama-3*",
//	             "pools": [{"pool": "stable", "weight": 90}, {"pool": "canary", "weight": 10}],
//	             "fallback": "backup"}],
//	 "reject_unknown_models": false}
type Config struct {
	// Aliases rewrite the request's "model": a request for a key is sent
	// (and routed) as its value. Aliases are not chained.
	Aliases map[string]string `json:"aliases"`
	// Routes are tried in order against the (rewritten) model; the first
	// match picks the pool.
	Routes []Route `json:"routes"`
	// RejectUnknownModels answers 404 model_not_found to a request whose
	// model matches no route. Default false: such requests are left to
	// the proxy's own routes.
	RejectUnknownModels bool `json:"reject_unknown_models"`
}

// Route sends a model to one of several upstream pools.
type Route struct {
	// Model is an exact model name or a pattern where '*' matches any run
	// of characters ("llama-3*"). Required.
	Model string `json:"model"`
	// Pools share the route's traffic in proportion to their weights
	// (a canary split). At least one.
	Pools []PoolWeight `json:"pools"`
	// Fallback is the pool used when no pool of the route has a healthy
	// endpoint. Optional.
	Fallback string `json:"fallback"`
}

// PoolWeight is one pool of a route.
type PoolWeight struct {
	// Pool is the upstream pool's name (as in the proxy's upstreams).
	Pool string `json:"pool"`
	// Weight is the pool's share, 0–1000000. Default 1. A pool with
	// weight 0 gets traffic only when the weighted pools have no healthy
	// endpoint.
	Weight *int `json:"weight"`
}

// maxWeight bounds a pool's weight.
const maxWeight = 1_000_000

// router is a validated configuration.
type router struct {
	aliases       map[string]string
	routes        []route
	rejectUnknown bool
}

type route struct {
	model    string
	pools    []string
	weights  []int
	total    int
	fallback string
}

// parseConfig decodes and validates a configuration. Errors name the field
// at fault, e.g. `modelrouter: routes[0].pools[1].weight: -5 is not in 0..1000000`.
func parseConfig(data []byte) (*router, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`modelrouter: the configuration is empty; it needs "aliases" and/or "routes"`)
	}
	var cfg Config
	if err := config.Decode("modelrouter", data, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Aliases) == 0 && len(cfg.Routes) == 0 {
		return nil, errors.New("modelrouter: aliases/routes: set at least one")
	}
	r := &router{aliases: cfg.Aliases, rejectUnknown: cfg.RejectUnknownModels}
	names := make([]string, 0, len(cfg.Aliases))
	for k := range cfg.Aliases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := cfg.Aliases[k]
		switch {
		case k == "":
			return nil, errors.New("modelrouter: aliases: empty model name")
		case v == "":
			return nil, fmt.Errorf("modelrouter: aliases[%q]: empty target", k)
		case v == k:
			return nil, fmt.Errorf("modelrouter: aliases[%q]: an alias of itself", k)
		}
		if _, chained := cfg.Aliases[v]; chained {
			return nil, fmt.Errorf("modelrouter: aliases[%q]: target %q is itself an alias; aliases are not chained, name the final model", k, v)
		}
	}
	for i, in := range cfg.Routes {
		rt, err := compileRoute(in)
		if err != nil {
			return nil, fmt.Errorf("modelrouter: routes[%d].%w", i, err)
		}
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

func compileRoute(in Route) (route, error) {
	rt := route{model: in.Model, fallback: in.Fallback}
	if in.Model == "" {
		return rt, errors.New("model: required")
	}
	if len(in.Pools) == 0 {
		return rt, errors.New("pools: at least one pool is required")
	}
	seen := map[string]bool{}
	for j, p := range in.Pools {
		if p.Pool == "" {
			return rt, fmt.Errorf("pools[%d].pool: required", j)
		}
		if seen[p.Pool] {
			return rt, fmt.Errorf("pools[%d].pool: %q appears twice", j, p.Pool)
		}
		seen[p.Pool] = true
		w := 1
		if p.Weight != nil {
			w = *p.Weight
		}
		if w < 0 || w > maxWeight {
			return rt, fmt.Errorf("pools[%d].weight: %d is not in 0..%d", j, w, maxWeight)
		}
		rt.pools = append(rt.pools, p.Pool)
		rt.weights = append(rt.weights, w)
		rt.total += w
	}
	if rt.total == 0 {
		return rt, errors.New("pools: the weights sum to 0; give at least one pool a positive weight")
	}
	return rt, nil
}

// match returns the first route for model, or nil.
func (r *router) match(model string) *route {
	for i := range r.routes {
		if glob.Match(r.routes[i].model, model) {
			return &r.routes[i]
		}
	}
	return nil
}

// health reports whether a pool has a healthy endpoint; known is false
// when the host gave no health information.
type health func(pool string) (healthy, known bool)

// choose picks the route's pool for a random number rnd in [0, total):
// the weighted choice, unless it has no healthy endpoint; then a weighted
// choice among the route's other healthy pools (zero-weight pools count
// as weight 1 here); then the fallback pool if it is healthy. When nothing
// is healthy the first choice stands (the proxy answers 503). diverted
// reports that health moved the request off the weighted choice.
func (rt *route) choose(rnd uint64, h health) (pool string, diverted bool) {
	first := pickWeighted(rt.weights, rt.total, rnd)
	if ok, known := h(rt.pools[first]); ok || !known {
		return rt.pools[first], false
	}
	var alt []int // indexes of healthy alternatives
	var weights []int
	total := 0
	for i, p := range rt.pools {
		if i == first {
			continue
		}
		if ok, _ := h(p); ok {
			w := max(rt.weights[i], 1)
			alt, weights, total = append(alt, i), append(weights, w), total+w
		}
	}
	if len(alt) > 0 {
		return rt.pools[alt[pickWeighted(weights, total, rnd)]], true
	}
	if rt.fallback != "" {
		if ok, _ := h(rt.fallback); ok {
			return rt.fallback, true
		}
	}
	return rt.pools[first], false
}

// poolNames returns every pool the router may choose, each once, in
// configuration order.
func (r *router) poolNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, rt := range r.routes {
		for _, p := range append(rt.pools[:len(rt.pools):len(rt.pools)], rt.fallback) {
			if p != "" && !seen[p] {
				seen[p] = true
				names = append(names, p)
			}
		}
	}
	return names
}

// pickWeighted returns the index whose cumulative weight range holds
// rnd % total. total must be the (positive) sum of weights.
func pickWeighted(weights []int, total int, rnd uint64) int {
	x := int(rnd % uint64(total))
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1 // unreachable when total is the sum
}

// rewriteModel returns body with the value at [start, end) (the "model"
// member's value) replaced by model as a JSON string.
func rewriteModel(body []byte, start, end int, model string) []byte {
	q, err := json.Marshal(model)
	if err != nil { // a string: cannot fail
		panic("modelrouter: marshal model: " + err.Error())
	}
	out := make([]byte, 0, len(body)-(end-start)+len(q))
	out = append(out, body[:start]...)
	out = append(out, q...)
	return append(out, body[end:]...)
}

// modelNotFound is OpenAI's reply for an unknown model.
func modelNotFound(model string) []byte {
	return openai.ErrorBody("The model `"+model+"` does not exist or you do not have access to it.",
		"invalid_request_error", "model", "model_not_found")
}
