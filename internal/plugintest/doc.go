// Package plugintest builds and locates guest plugins for the tests of other
// packages; nothing outside tests imports it.
//
//   - BuildGo builds a Go guest of this module (for example
//     "plugins/headers") with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
//   - BuildC and BuildAS build the C and AssemblyScript guests.
//   - Fixture returns a hand-written hostile guest from wasm/testdata/hostile.
//   - CompileCacheDir is the wazero compilation cache all test hosts share,
//     LogBuffer a goroutine-safe log sink, and Serve runs a proxy.Server on
//     a free 127.0.0.1 port until the test ends: the pieces that the wasm
//     package's own tests (which cannot import internal/pluginenv, as it
//     imports wasm) share with pluginenv and the examples.
//
// Built modules are cached across tests and across test binaries under
// os.TempDir()/sluice-plugintest/<hash>.wasm, where the hash covers the
// sources and the toolchain version. Outputs are written to a temporary file
// and renamed into place, so concurrent `go test` processes never see a
// partial module. The returned paths are shared: callers must not modify the
// files.
//
// A missing toolchain skips the calling test with a message naming what to
// install (SkipOrFail), unless SLUICE_TEST_STRICT=1 (Strict), as in CI, where
// it fails the test instead. A compile error always fails the test with the
// compiler's output.
package plugintest
