//go:build !wasip1

package main

// The end-to-end harness lives in internal/pluginenv; these wrappers bind
// it to this package's plugin.

import (
	"io"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/wasm"
)

type (
	env        = pluginenv.Env
	syncBuffer = pluginenv.LogBuffer
)

func pluginPath(t *testing.T) string { return pluginenv.PluginPath(t, pluginPkg) }

func newHost(t *testing.T, logs io.Writer, upstreams []proxy.UpstreamConfig, set *metrics.Set) *wasm.Host {
	return pluginenv.NewHost(t, logs, upstreams, set)
}

func load(t *testing.T, config string) (*wasm.Plugin, *syncBuffer, error) {
	return pluginenv.Load(t, pluginPkg, config)
}

func pluginConfig(t *testing.T, config string) proxy.PluginConfig {
	return pluginenv.PluginConfig(t, pluginPkg, config)
}

func start(t *testing.T, cfg *proxy.Config, plugins ...proxy.PluginConfig) *env {
	return pluginenv.Start(t, cfg, plugins...)
}
