//go:build !wasip1

// Command headers is a Proxy-Wasm plugin; this file only exists so the
// package builds (and its configuration parser is tested) on the host. Build
// the plugin with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o headers.wasm ./plugins/headers
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "headers is a Proxy-Wasm plugin: build it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared")
	os.Exit(2)
}
