// Package modellist answers an OpenAI GET /v1/models for Sluice's pools:
// the names the configuration declares and those the endpoints in
// rotation report, merged, fetched at most once per TTL. Package proxy
// builds one Cache per configuration generation (New), asks Enabled and
// IsRequest on its request path and calls Serve.
package modellist

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// GET /v1/models. When a pool lists models or aliases (and OpenAICompat
// is on), Sluice answers /v1/models itself, after the plugins' request
// phase (so an authenticating plugin still guards it) unless a plugin
// chose a pool or an endpoint, in which case the request is forwarded.
// The answer is OpenAI's list: the configured names (pools' models
// except "*", aliases and their targets) then the models the endpoints in
// rotation report on their own /v1/models, each id once.
//
// The endpoints' lists are cached for modelsTTL and refreshed by the
// first request after that, which waits for the refresh (at most
// modelsFetchTimeout); concurrent requests wait for the same refresh. An
// endpoint that fails to answer keeps its last list.

const (
	modelsTTL          = 30 * time.Second
	modelsFetchTimeout = 2 * time.Second
	pathV1Models       = "/v1/models"
)

var strApplicationJSON = []byte("application/json")

// modelEntry is one model of an OpenAI list.
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string       `json:"object"`
	Data   []modelEntry `json:"data"`
}

// Cache holds the rendered /v1/models answer of one configuration and
// its pools. It is safe for concurrent use; requests that find it stale
// wait for one refresh.
type Cache struct {
	cfg     *config.Config
	pools   *upstream.Pools
	timeout time.Duration // a fetch's bound: min(modelsFetchTimeout, the config's timeout)
	enabled bool
	created int64 // for configured models: the cache's creation
	mu      sync.Mutex
	fetched time.Time
	lists   map[*upstream.Endpoint][]modelEntry
	body    []byte
}

// New returns the Cache of cfg and the pools built from it; timeout is
// cfg's request timeout (a fetch takes at most 2 s or timeout, the
// shorter). It fetches nothing until the first Serve.
func New(cfg *config.Config, pools *upstream.Pools, timeout time.Duration) *Cache {
	mc := &Cache{cfg: cfg, pools: pools, timeout: min(modelsFetchTimeout, timeout), created: time.Now().Unix()}
	for i := range cfg.Upstreams {
		mc.enabled = mc.enabled || (cfg.OpenAICompat && cfg.Upstreams[i].DeclaresModels())
	}
	return mc
}

// Enabled reports whether Sluice answers /v1/models itself: OpenAICompat
// is on and a pool lists models or aliases.
func (mc *Cache) Enabled() bool { return mc.enabled }

// IsRequest reports whether the request is GET (or HEAD) /v1/models.
func IsRequest(req *fasthttp.Request) bool {
	return (req.Header.IsGet() || req.Header.IsHead()) && string(req.URI().Path()) == pathV1Models
}

// Serve answers /v1/models from the cache: 200, application/json.
func (mc *Cache) Serve(ctx *fasthttp.RequestCtx) {
	body := mc.get()
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.Response.SetBody(body)
}

// get returns the current answer, refreshing it when stale.
func (mc *Cache) get() []byte {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.body == nil || time.Since(mc.fetched) > modelsTTL {
		mc.refresh()
	}
	return mc.body
}

// refresh fetches every endpoint's list concurrently; mc.mu is held.
func (mc *Cache) refresh() {
	if mc.lists == nil {
		mc.lists = make(map[*upstream.Endpoint][]modelEntry)
	}
	type result struct {
		ep   *upstream.Endpoint
		list []modelEntry
		ok   bool
	}
	var eps []*upstream.Endpoint
	for _, p := range mc.pools.List() {
		pm := p.InPanic()
		for _, ep := range p.Endpoints() {
			if pm || ep.Up() {
				eps = append(eps, ep)
			}
		}
	}
	results := make([]result, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, ok := fetchModels(ep, mc.timeout)
			results[i] = result{ep, list, ok}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.ok {
			mc.lists[r.ep] = r.list
		}
	}
	mc.fetched = time.Now()
	mc.body = mc.render()
}

// fetchModels reads an endpoint's /v1/models.
func fetchModels(ep *upstream.Endpoint, timeout time.Duration) ([]modelEntry, bool) {
	status, body, err := ep.ProbeGet(pathV1Models, timeout)
	if err != nil || status != fasthttp.StatusOK {
		return nil, false
	}
	var l modelList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, false
	}
	out := l.Data[:0]
	for _, m := range l.Data {
		if m.ID != "" {
			m.Object = "model"
			out = append(out, m)
		}
	}
	return out, true
}

// render builds the union list; mc.mu is held.
func (mc *Cache) render() []byte {
	l := modelList{Object: "list", Data: []modelEntry{}}
	seen := map[string]bool{}
	add := func(m modelEntry) {
		if !seen[m.ID] {
			seen[m.ID] = true
			l.Data = append(l.Data, m)
		}
	}
	for i := range mc.cfg.Upstreams {
		u := &mc.cfg.Upstreams[i]
		names := make([]string, 0, len(u.Models)+2*len(u.ModelAliases))
		for _, m := range u.Models {
			if m != "*" {
				names = append(names, m)
			}
		}
		var aliases []string
		for alias, target := range u.ModelAliases {
			aliases = append(aliases, alias, target)
		}
		sort.Strings(aliases)
		names = append(names, aliases...)
		for _, n := range names {
			add(modelEntry{ID: n, Object: "model", Created: mc.created, OwnedBy: u.Name})
		}
	}
	for _, p := range mc.pools.List() {
		for _, ep := range p.Endpoints() {
			for _, m := range mc.lists[ep] {
				add(m)
			}
		}
	}
	b, err := json.Marshal(l)
	if err != nil { // plain strings and numbers: cannot happen
		return []byte(`{"object":"list","data":[]}`)
	}
	return b
}
