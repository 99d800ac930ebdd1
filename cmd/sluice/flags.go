package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// options are the command-line flags.
type options struct {
	configPath  string
	validate    bool
	demo        bool
	hostname    string
	port        int
	upstreams   stringList
	maxRequests int
	timeout     time.Duration
	logFormat   string
	logLevel    string
	pprofAddr   string
	version     bool
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func parseFlags(args []string, stderr io.Writer) (*options, *flag.FlagSet, error) {
	o := &options{}
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "YAML config `file`")
	fs.BoolVar(&o.validate, "validate", false, "check the config (and compile every plugin), then exit: 0 if valid, 2 if not")
	fs.BoolVar(&o.demo, "demo", false, "also start an embedded simulated inference engine (model \"demo\") and proxy to it")
	fs.StringVar(&o.hostname, "hostname", "", "address to listen on (overrides the file; default 0.0.0.0)")
	fs.IntVar(&o.port, "port", 0, "port to listen on (overrides the file; default 8080)")
	fs.Var(&o.upstreams, "upstream", "upstream endpoint `URL` for pool \"default\" (repeatable; replaces the file's pools)")
	fs.IntVar(&o.maxRequests, "max-concurrent-requests", 0, "admission slots (overrides the file; default 128)")
	fs.DurationVar(&o.timeout, "timeout", 0, "upstream idle timeout (overrides the file; default 60s)")
	fs.StringVar(&o.logFormat, "log-format", "", "log format: text or json (overrides the file)")
	fs.StringVar(&o.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides the file)")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060) for profiling, or \"admin\" for the admin listener (required when admin.port is set); off by default")
	fs.BoolVar(&o.version, "version", false, "print the version, commit and Go version, then exit")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, errors.New("unexpected arguments: " + strings.Join(fs.Args(), " "))
	}
	return o, fs, nil
}

// buildConfig loads the file (or the defaults) and applies the flags that
// were set. The result is not validated.
func buildConfig(o *options, set map[string]bool) (*proxy.Config, error) {
	cfg := proxy.NewConfig()
	if o.configPath != "" {
		c, err := loadFile(o.configPath)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if set["hostname"] {
		cfg.Hostname = o.hostname
	}
	if set["port"] {
		cfg.Port = o.port
	}
	if set["max-concurrent-requests"] {
		cfg.MaxConcurrentRequests = o.maxRequests
	}
	if set["timeout"] {
		cfg.Timeout = proxy.Duration(o.timeout)
	}
	if set["log-format"] {
		cfg.Log.Format = o.logFormat
	}
	if set["log-level"] {
		cfg.Log.Level = o.logLevel
	}
	if len(o.upstreams) > 0 {
		cfg.Upstreams = []proxy.UpstreamConfig{{Name: "default", Endpoints: o.upstreams}}
		cfg.Routes = nil
	}
	return cfg, nil
}

func loadFile(path string) (*proxy.Config, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return proxy.ParseConfig(b)
}
