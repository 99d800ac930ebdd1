package version

import (
	"runtime/debug"
	"testing"
)

// TestFromBuildInfo: the version comes from -ldflags, else the module
// version, else "devel"; the commit from vcs.revision, "-dirty" when
// vcs.modified, else "unknown".
func TestFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.modified", Value: "true"}}
	for _, c := range []struct {
		name     string
		bi       *debug.BuildInfo
		override string
		want     Info
	}{
		{"source build", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"", Info{Version: "devel", Commit: "unknown", GoVersion: "go1.26.8"}},
		{"go install @version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			"", Info{Version: "v1.2.3", Commit: "unknown", GoVersion: "go1.26.8"}},
		{"ldflags and a dirty tree", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			"v9.9.9", Info{Version: "v9.9.9", Commit: "0123abc-dirty", GoVersion: "go1.26.8"}},
	} {
		if got := fromBuildInfo(c.bi, c.override); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if got := fromBuildInfo(nil, ""); got.Version != "devel" || got.Commit != "unknown" || got.GoVersion == "" {
		t.Errorf("no build info: %+v", got)
	}
	if got := (Info{Version: "v1", Commit: "abc", GoVersion: "go1.26.8"}).String(); got != "sluice v1 (commit abc, go1.26.8)" {
		t.Errorf("String() = %q", got)
	}
}
