package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/wasm"
)

// pluginSet owns the loaded plugins across reloads. A plugin whose
// configuration (every key of its entry) and wasm file (its bytes) are
// unchanged is reused by the next generation: the same instances, nothing
// recompiled or restarted, the guest's memory and ticks kept (Envoy keeps
// a VM whose code and vm_config are unchanged). Any other plugin is
// loaded anew. A plugin is closed when the last generation using it is
// retired. Shared data is the host's, per vm_id, and outlives both.
// Safe for concurrent use: acquire runs on the reloading goroutine,
// release on the goroutines that retire generations.
type pluginSet struct {
	mu    sync.Mutex
	byKey map[string]*loadedPlugin
}

// loadedPlugin is one plugin and the number of generations using it.
type loadedPlugin struct {
	p    *wasm.Plugin
	key  string
	refs int // guarded by pluginSet.mu
}

// pluginKey identifies a plugin entry and its code. The file is read
// here and again by the host's Load; if it changes in between, the next
// reload sees a new key and loads it again.
func pluginKey(pc proxy.PluginConfig) (string, error) {
	code, err := readFile(pc.Path)
	if err != nil {
		return "", fmt.Errorf("config: plugins: plugin %q: %w", pc.Name, err)
	}
	entry, err := json.Marshal(pc) // maps are written in key order
	if err != nil {
		return "", fmt.Errorf("config: plugins: plugin %q: %w", pc.Name, err)
	}
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:]) + string(entry), nil
}

// acquire returns the plugins of pcs, in order: reused when unchanged,
// else loaded by host. reused counts the reused ones. On error nothing is
// held and the error names the plugin.
func (ps *pluginSet) acquire(ctx context.Context, host *wasm.Host, pcs []proxy.PluginConfig) (list []*loadedPlugin, reused int, err error) {
	defer func() {
		if err != nil {
			ps.release(list)
			list, reused = nil, 0
		}
	}()
	for _, pc := range pcs {
		key, err := pluginKey(pc)
		if err != nil {
			return list, reused, err
		}
		ps.mu.Lock()
		lp := ps.byKey[key]
		if lp != nil {
			lp.refs++
		}
		ps.mu.Unlock()
		if lp != nil {
			list = append(list, lp)
			reused++
			continue
		}
		p, err := host.Load(ctx, pc)
		if err != nil {
			return list, reused, err
		}
		lp = &loadedPlugin{p: p, key: key, refs: 1}
		ps.mu.Lock()
		if ps.byKey == nil {
			ps.byKey = make(map[string]*loadedPlugin)
		}
		ps.byKey[key] = lp
		ps.mu.Unlock()
		list = append(list, lp)
	}
	return list, reused, nil
}

// release gives back one generation's plugins, closing those no
// generation uses any more.
func (ps *pluginSet) release(list []*loadedPlugin) {
	var closing []*wasm.Plugin
	ps.mu.Lock()
	for _, lp := range list {
		lp.refs--
		if lp.refs == 0 {
			if ps.byKey[lp.key] == lp {
				delete(ps.byKey, lp.key)
			}
			closing = append(closing, lp.p)
		}
	}
	ps.mu.Unlock()
	for _, p := range closing {
		_ = p.Close()
	}
}

// filters returns the plugins as the proxy's filters.
func filters(list []*loadedPlugin) []proxy.Filter {
	fs := make([]proxy.Filter, len(list))
	for i, lp := range list {
		fs[i] = lp.p
	}
	return fs
}
