//go:build !wasip1

// Command cacheaware is a Proxy-Wasm plugin; this file only exists so the
// package builds (and its logic is tested) on the host. Build the plugin
// with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cacheaware.wasm ./plugins/cacheaware
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cacheaware is a Proxy-Wasm plugin: build it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared")
	os.Exit(2)
}
