package config

import (
	"strings"
	"testing"
	"time"
)

func TestPluginSharedDataValidate(t *testing.T) {
	ok := PluginSharedData{TTL: Duration(time.Minute), EvictOldest: true,
		Prefixes: []PluginSharedDataPrefix{{Prefix: "a/", TTL: Duration(time.Second)}, {Prefix: "b/"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, c := range map[string]PluginSharedData{
		"shared_data.ttl":                {TTL: -1},
		"shared_data.prefixes[0].prefix": {Prefixes: []PluginSharedDataPrefix{{}}},
		"shared_data.prefixes[1].prefix": {Prefixes: []PluginSharedDataPrefix{{Prefix: "a"}, {Prefix: "a"}}},
		"shared_data.prefixes[0].ttl":    {Prefixes: []PluginSharedDataPrefix{{Prefix: "a", TTL: -1}}},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want it to name %s", c, err, want)
		}
	}
}
