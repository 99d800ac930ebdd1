// Tests of the deploy files: what can be checked without a container
// engine, a cluster or a running systemd. docker build cannot run here;
// the Dockerfile's go build line does.
package deploy_test

import (
	"bytes"
	"debug/elf"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/proxy"
)

// configPath is where every deploy file puts sluice.yaml.
const configPath = "/etc/sluice/sluice.yaml"

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeYAML decodes the single YAML document in path into v.
func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// validConfig parses and validates sluice.yaml text as Sluice does.
func validConfig(t *testing.T, what string, text []byte) *proxy.Config {
	t.Helper()
	cfg, err := proxy.ParseConfig(text)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return cfg
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type container struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					EmptyDir any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// kube is the Kubernetes manifests, decoded.
type kube struct {
	cfg       *proxy.Config
	configMap struct {
		Kind     string                `yaml:"kind"`
		Metadata struct{ Name string } `yaml:"metadata"`
		Data     map[string]string     `yaml:"data"`
	}
	deploy  deployment
	service struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	pdb struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
}

func loadKube(t *testing.T) *kube {
	t.Helper()
	var k kube
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	decodeYAML(t, "kubernetes/kustomization.yaml", &kust)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("kustomization.yaml does not list %s", base)
		}
	}
	into := map[string]any{"ConfigMap": &k.configMap, "Deployment": &k.deploy, "Service": &k.service, "PodDisruptionBudget": &k.pdb}
	for _, r := range kust.Resources {
		var head struct{ Kind string }
		path := filepath.Join("kubernetes", r)
		decodeYAML(t, path, &head)
		v, ok := into[head.Kind]
		if !ok {
			t.Fatalf("%s: unexpected kind %q", r, head.Kind)
		}
		decodeYAML(t, path, v)
	}
	if len(k.deploy.Spec.Template.Spec.Containers) != 1 || k.configMap.Kind == "" || k.service.Kind == "" || k.pdb.Kind == "" {
		t.Fatal("kustomization.yaml lacks the ConfigMap, Deployment (one container), Service or PodDisruptionBudget")
	}
	k.cfg = validConfig(t, "configmap.yaml sluice.yaml", []byte(k.configMap.Data[filepath.Base(configPath)]))
	return &k
}

// portOf resolves a probe's or Service's port (a number or a port name)
// in c.
func portOf(c *container, p any) int {
	switch p := p.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return -1
}

func seconds(d proxy.Duration) int { return int(time.Duration(d) / time.Second) }

// TestKubernetesManifests: the Deployment listens where the ConfigMap's
// sluice.yaml does, probes the paths the server answers, mounts the config
// where the args read it, and gives the drain its time.
func TestKubernetesManifests(t *testing.T) {
	k := loadKube(t)
	cfg, pod := k.cfg, &k.deploy.Spec.Template
	c := &pod.Spec.Containers[0]
	if !cfg.Admin.Enabled() {
		t.Fatal("the ConfigMap's sluice.yaml has no admin listener: /metrics would be on the Service's port")
	}
	if len(c.Ports) != 2 || c.Ports[0].ContainerPort != cfg.Port || c.Ports[1].ContainerPort != cfg.Admin.Port {
		t.Errorf("container ports %+v, want the config's port %d and admin port %d", c.Ports, cfg.Port, cfg.Admin.Port)
	}
	for _, p := range []struct {
		name string
		pr   *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/health"}, {"readinessProbe", c.ReadinessProbe, "/ready"}} {
		if p.pr == nil || p.pr.HTTPGet.Path != p.path || portOf(c, p.pr.HTTPGet.Port) != cfg.Port {
			t.Fatalf("%s %+v, want GET %s on port %d", p.name, p.pr, p.path, cfg.Port)
		}
	}
	// Kubernetes marks the pod unready after period x threshold; drain_delay
	// must last that long (config.Config.DrainDelay).
	if r := c.ReadinessProbe; seconds(cfg.DrainDelay) < r.PeriodSeconds*r.FailureThreshold {
		t.Errorf("drain_delay %s is shorter than the readiness probe's %ds x %d", cfg.DrainDelay, r.PeriodSeconds, r.FailureThreshold)
	}
	if g, need := pod.Spec.TerminationGracePeriodSeconds, seconds(cfg.DrainDelay)+seconds(cfg.ShutdownTimeout); g < need {
		t.Errorf("terminationGracePeriodSeconds %d < drain_delay + shutdown_timeout = %d", g, need)
	}
	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(cfg.Admin.Port) || ann["prometheus.io/path"] != "/metrics" || !cfg.EnableMetrics {
		t.Errorf("scrape annotations %v do not match the config (admin port %d, metrics on: %v)", ann, cfg.Admin.Port, cfg.EnableMetrics)
	}
	// The config file is the ConfigMap's key, mounted where args read it.
	if i := slices.Index(c.Args, "-config"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != configPath {
		t.Errorf("args %q, want -config %s", c.Args, configPath)
	}
	mounts := map[string]string{} // mount path → volume
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	var cmVolume, cacheVolume bool
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == k.configMap.Metadata.Name && mounts[filepath.Dir(configPath)] == v.Name {
			cmVolume = true
		}
		if v.EmptyDir != nil && mounts[cfg.PluginCacheDir] == v.Name {
			cacheVolume = true
		}
	}
	if !cmVolume {
		t.Errorf("no volume of ConfigMap %q is mounted at %s", k.configMap.Metadata.Name, filepath.Dir(configPath))
	}
	if c.SecurityContext.ReadOnlyRootFilesystem && !cacheVolume {
		t.Errorf("the root filesystem is read-only but plugin_cache_dir %q is not an emptyDir mount", cfg.PluginCacheDir)
	}
	if !pod.Spec.SecurityContext.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	// Service and PodDisruptionBudget select these pods.
	sel := k.deploy.Spec.Selector.MatchLabels
	for what, m := range map[string]map[string]string{"Deployment selector": sel, "Service selector": k.service.Spec.Selector, "PodDisruptionBudget selector": k.pdb.Spec.Selector.MatchLabels} {
		for key, v := range m {
			if pod.Metadata.Labels[key] != v {
				t.Errorf("%s %v does not match the pod labels %v", what, m, pod.Metadata.Labels)
			}
		}
		if len(m) == 0 {
			t.Errorf("%s is empty", what)
		}
	}
	if len(k.service.Spec.Ports) != 1 || portOf(c, k.service.Spec.Ports[0].TargetPort) != cfg.Port {
		t.Errorf("Service ports %+v, want targetPort %d", k.service.Spec.Ports, cfg.Port)
	}
	t.Run("kubectl kustomize", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("SKIP: kubectl not found; the manifests were checked as YAML only")
		}
		if out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput(); err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
	})
	checkServed(t, cfg, c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	checkAdminServes(t, cfg, ann["prometheus.io/path"])
}

// checkAdminServes asserts the admin handler of a server built from cfg
// answers path 200 with a body.
func checkAdminServes(t *testing.T, cfg *proxy.Config, path string) {
	t.Helper()
	srv, err := proxy.NewServer(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 || rec.Body.Len() == 0 {
		t.Errorf("admin GET %s: %d, want 200 with the metrics", path, rec.Code)
	}
}

// checkServed asserts a server built from cfg answers each path itself,
// 200 once ready (an upstream path would fail: nothing listens there).
func checkServed(t *testing.T, cfg *proxy.Config, paths ...string) {
	t.Helper()
	srv, err := proxy.NewServer(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Router().SetReady(true)
	h := srv.Handler()
	for _, p := range paths {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(p)
		h(&ctx)
		if code := ctx.Response.StatusCode(); code != 200 || len(ctx.Response.Body()) == 0 {
			t.Errorf("GET %s: %d %q, want 200 from the server itself", p, code, ctx.Response.Body())
		}
	}
}

// unit parses a systemd unit file: key → values, in order, per section
// ("Service.ExecStart").
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", path, i+1, line)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

// TestSystemdUnit: reload is SIGHUP, the sandbox is on, the stop timeout
// covers the example config's drain, and systemd-analyze verify accepts
// the unit where systemd is installed.
func TestSystemdUnit(t *testing.T) {
	const path = "systemd/sluice.service"
	u := unit(t, path)
	cfg := validConfig(t, "systemd/sluice.yaml", readFile(t, "systemd/sluice.yaml"))
	want := map[string]string{
		"Service.ExecStart":        "/usr/local/bin/sluice -config " + configPath,
		"Service.ExecReload":       "/bin/kill -HUP $MAINPID",
		"Service.KillSignal":       "SIGTERM",
		"Service.NoNewPrivileges":  "yes",
		"Service.ProtectSystem":    "strict",
		"Service.ProtectHome":      "yes",
		"Service.PrivateTmp":       "yes",
		"Service.DynamicUser":      "yes",
		"Service.RestrictSUIDSGID": "yes",
		"Install.WantedBy":         "multi-user.target",
	}
	for k, v := range want {
		if got := u[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if v := u["Service.MemoryDenyWriteExecute"]; len(v) > 0 && v[0] != "no" {
		t.Error("MemoryDenyWriteExecute breaks wazero's compiled plugins")
	}
	stop, err := time.ParseDuration(u["Service.TimeoutStopSec"][0])
	if err != nil || stop < time.Duration(cfg.DrainDelay)+time.Duration(cfg.ShutdownTimeout) {
		t.Errorf("TimeoutStopSec %q (%v) must exceed drain_delay + shutdown_timeout of systemd/sluice.yaml", u["Service.TimeoutStopSec"], err)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		// Not installed in CI on purpose (RATIONALE.md): the checks above
		// run everywhere.
		t.Skip("SKIP: systemd-analyze not found; the unit's keys were checked, not verified by systemd")
	}
	// verify wants ExecStart's binary to exist: point it at this test's.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Replace(readFile(t, path), []byte("ExecStart=/usr/local/bin/sluice"), []byte("ExecStart="+self), 1)
	tmp := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// dockerfile returns the Dockerfile's instructions, continuation lines
// joined, comments dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	var out []string
	cur := ""
	for _, line := range strings.Split(string(readFile(t, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || trimmed[0] == '#') {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		out = append(out, cur+trimmed)
		cur = ""
	}
	return out
}

// shellWords splits a simple shell command: spaces separate words, double
// quotes group (and are removed).
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestDockerfile: the build stage's Go matches go.mod, what it copies and
// builds exists, the binary's go build line builds a static binary here,
// and the final stage runs it as non-root with CA certificates and the
// config path the other deploy files use.
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms, runs []string
	var user, entry, cmd string
	for _, in := range ins {
		op, arg, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			froms = append(froms, arg)
		case "RUN":
			runs = append(runs, arg)
		case "USER":
			user = arg
		case "ENTRYPOINT":
			entry = arg
		case "CMD":
			cmd = arg
		case "COPY":
			if !strings.HasPrefix(arg, "--from=") {
				for _, src := range strings.Fields(arg)[:len(strings.Fields(arg))-1] {
					if _, err := os.Stat(filepath.Join("..", src)); err != nil {
						t.Errorf("COPY %s: %v", src, err)
					}
				}
			}
		}
	}
	goMod := string(readFile(t, "../go.mod"))
	_, goVersion, _ := strings.Cut(strings.Split(goMod[strings.Index(goMod, "\ngo ")+1:], "\n")[0], " ")
	if len(froms) != 2 || !strings.HasPrefix(froms[0], "golang:"+strings.Join(strings.Split(goVersion, ".")[:2], ".")) {
		t.Errorf("stages %q: want two, the first golang:%s (go.mod)", froms, goVersion)
	}
	if len(froms) > 0 && !strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/static") {
		t.Errorf("final stage %q: want distroless/static (CA certificates, no libc)", froms[len(froms)-1])
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if entry != `["/usr/local/bin/sluice"]` || cmd != `["-config", "`+configPath+`"]` {
		t.Errorf("ENTRYPOINT %s CMD %s: want /usr/local/bin/sluice -config %s", entry, cmd, configPath)
	}
	var build []string
	for _, r := range runs {
		if strings.Contains(r, "./cmd/sluice") {
			build = shellWords(r)
		}
		if strings.Contains(r, "./plugins/$p") {
			list := r[strings.Index(r, " in ")+4 : strings.Index(r, ";")]
			for _, p := range strings.Fields(list) {
				if _, err := os.Stat(filepath.Join("../plugins", p, "plugin.go")); err != nil {
					t.Errorf("plugin %s: %v", p, err)
				}
			}
		}
	}
	if len(build) < 3 || build[0] != "CGO_ENABLED=0" || build[1] != "go" || build[2] != "build" {
		t.Fatalf("the binary's RUN line %q: want CGO_ENABLED=0 go build …", build)
	}
	if testing.Short() {
		t.Skip("SKIP: -short: the Dockerfile's go build line was checked, not run")
	}
	args := slices.Clone(build[2:])
	out := filepath.Join(t.TempDir(), "sluice")
	i := slices.Index(args, "-o")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("go build line %q has no -o", build)
	}
	args[i+1] = out
	run := exec.Command("go", args...)
	run.Dir = ".."
	run.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			libs = append(libs, "(a dynamic loader)")
		}
	}
	if len(libs) > 0 {
		t.Fatalf("the binary is not static: needs %q", libs)
	}
}
