// Package version tells which build of Sluice is running: for
// `sluice -version` and the sluice_build_info metric.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the release version. Empty by default: Get then uses the
// main module's version from the build info ("v1.2.3" when built with
// `go install …@v1.2.3`), or "devel" for a build from a source tree.
// Release builds may set it:
//
//	go build -ldflags "-X github.com/sluice-proxy/sluice/internal/version.Version=v1.2.3" ./cmd/sluice
var Version string

// Info is what Get reports.
type Info struct {
	// Version is the release version (see Version), never empty.
	Version string
	// Commit is the VCS revision the binary was built from, with
	// "-dirty" when the tree had local changes; "unknown" when the build
	// recorded none (go build -buildvcs=false, or no VCS).
	Commit string
	// GoVersion is the Go toolchain that built the binary (runtime.Version).
	GoVersion string
}

// Get reads the build information. Safe for concurrent use.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, Version)
}

func fromBuildInfo(bi *debug.BuildInfo, override string) Info {
	in := Info{Version: override, Commit: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		if in.Version == "" {
			in.Version = "devel"
		}
		return in
	}
	if in.Version == "" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" || in.Version == "(devel)" {
		in.Version = "devel"
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && in.Commit != "unknown" {
		in.Commit += "-dirty"
	}
	return in
}

// String is the one line `sluice -version` prints:
//
//	sluice v1.2.3 (commit 0ccc428…, go1.26.8)
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("sluice ")
	b.WriteString(in.Version)
	b.WriteString(" (commit ")
	b.WriteString(in.Commit)
	b.WriteString(", ")
	b.WriteString(in.GoVersion)
	b.WriteString(")")
	return b.String()
}
