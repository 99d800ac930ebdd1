package main

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// versionLine is what -version prints: version, commit, Go version.
var versionLine = regexp.MustCompile(`^sluice (\S+) \(commit (\S+), (go1\.\d+\S*)\)\n$`)

// TestVersionFlag: -version prints the version, the commit the binary was
// built from (from the build info) and the Go version, and exits 0; a
// release build sets the version with -ldflags -X.
func TestVersionFlag(t *testing.T) {
	bin := sluiceBinary(t)
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("-version: %v", err)
	}
	m := versionLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("-version printed %q", out)
	}

	// A release build: the version from -ldflags -X; the commit from the
	// VCS stamp when the go command recorded one (not in a git worktree,
	// nor with -buildvcs=false), else "unknown".
	rel := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", rel, "-ldflags", "-X github.com/sluice-proxy/sluice/internal/version.Version=v9.8.7", ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags: %v\n%s", err, b)
	}
	out, err = exec.Command(rel, "-version").Output()
	m = versionLine.FindStringSubmatch(string(out))
	if err != nil || m == nil || m[1] != "v9.8.7" {
		t.Fatalf("release build -version: %q %v", out, err)
	}
	info, err := exec.Command("go", "version", "-m", rel).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "unknown"
	if r := regexp.MustCompile(`\bvcs\.revision=(\S+)`).FindSubmatch(info); r != nil {
		want = string(r[1])
	}
	if m[2] != want && m[2] != want+"-dirty" {
		t.Errorf("commit %q, want %q (go version -m: the build info)", m[2], want)
	}
}

// TestAdminListenerBinary: with admin set and -pprof admin, the admin port
// serves /metrics, the profiles, /health and /ready; the main port
// answers /health and /ready but not /metrics (404) nor the profiles.
func TestAdminListenerBinary(t *testing.T) {
	up := proxytest.NewServer(proxytest.Options{})
	defer up.Close()
	port, adminPort := freePort(t), freePort(t)
	path := writeConfig(t, "hostname: 127.0.0.1\nport: "+strconv.Itoa(port)+"\nlog: {format: json}\n"+
		"admin: {hostname: 127.0.0.1, port: "+strconv.Itoa(adminPort)+"}\n"+
		"upstreams: [{name: a, endpoints: ['"+up.URL+"']}]\n")
	s := startSluiceArgs(t, port, "-config", path, "-pprof", "admin")
	admin := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	for _, c := range []struct {
		url  string
		want int
	}{
		{admin + "/metrics", 200}, {admin + "/debug/pprof/", 200}, {admin + "/health", 200}, {admin + "/ready", 200},
		{s.base + "/health", 200}, {s.base + "/ready", 200}, {s.base + "/metrics", 404},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s: %d, want %d", c.url, resp.StatusCode, c.want)
		}
	}
	// On the main port /debug/pprof/ is an ordinary path, proxied.
	if body := get(t, s.base+"/debug/pprof/"); strings.Contains(body, "goroutine") {
		t.Errorf("the main port serves the profiles: %q", body)
	}
}

// TestPprofWithAdmin: with an admin listener the profiles are served
// there only, so -pprof with an address is a config error (exit 2)
// naming the fix; -pprof admin without an admin listener is one too.
func TestPprofWithAdmin(t *testing.T) {
	withAdmin := writeConfig(t, "admin: {port: 9091}\nupstreams: [{name: a, endpoints: ['http://127.0.0.1:9']}]\n")
	if code, _, errOut := runCLI(t, "-config", withAdmin, "-pprof", "127.0.0.1:0"); code != exitConfig || !strings.Contains(errOut, "use -pprof admin") {
		t.Fatalf("-pprof address with admin: exit %d, %q", code, errOut)
	}
	without := writeConfig(t, "upstreams: [{name: a, endpoints: ['http://127.0.0.1:9']}]\n")
	if code, _, errOut := runCLI(t, "-config", without, "-pprof", "admin"); code != exitConfig || !strings.Contains(errOut, "admin.port") {
		t.Fatalf("-pprof admin without admin: exit %d, %q", code, errOut)
	}
}
