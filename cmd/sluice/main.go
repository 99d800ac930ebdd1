// Command sluice runs the Sluice edge proxy.
//
//	sluice -config sluice.yaml          run with a config file
//	sluice -config sluice.yaml -validate  check the config and plugins, exit 0 or 2
//	sluice -demo                        run in front of an embedded simulated engine
//	sluice -version                     print version, commit and Go version
//
// Flags override the file: -hostname, -port, -upstream URL (repeatable, into
// pool "default"), -max-concurrent-requests, -timeout. -pprof ADDR serves
// Go's profiles on their own listener; -pprof admin on the admin listener
// (config admin: {hostname, port}), which also takes /metrics.
//
// SIGHUP reloads: the file is read again (with the same flags), validated
// and its plugins compiled off the request path, then swapped in; requests
// in flight finish on the old configuration. A bad config, a plugin that
// fails to load or a change only a restart can apply (hostname, port…)
// keeps the running one, with an error logged.
//
// SIGTERM or SIGINT drains: /ready answers 503 at once, the listener keeps
// serving for drain_delay (every answer with Connection: close), then
// closes, and in-flight requests get shutdown_timeout; a second signal
// ends the drain at once. Exit codes: 0 when every request finished, 1
// on a start-up error or when the drain cut requests still running, 2 for
// a bad config.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1 // also: the drain cut requests still running
	exitConfig = 2
)

func fatalf(stderr *os.File, format string, args ...any) {
	fmt.Fprintf(stderr, "sluice: "+format+"\n", args...)
}
