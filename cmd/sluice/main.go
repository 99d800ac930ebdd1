// Command sluice runs the Sluice edge proxy.
//
//	sluice -config sluice.yaml          run with a config file
//	sluice -config sluice.yaml -validate  check the config and plugins, exit 0 or 2
//	sluice -demo                        run in front of an embedded demo upstream
//
// Flags override the file: -hostname, -port, -upstream URL (repeatable, into
// pool "default"), -max-concurrent-requests, -timeout.
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
	exitError  = 1
	exitConfig = 2
)

func fatalf(stderr *os.File, format string, args ...any) {
	fmt.Fprintf(stderr, "sluice: "+format+"\n", args...)
}
