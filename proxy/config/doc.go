// Package config is Sluice's configuration: the types (Config and what it
// holds, PluginConfig included), YAML loading (Load, Parse: snake_case
// keys, unknown keys are errors naming their line and field), the With…
// builder, validation (Validate names the first bad field as an *Error)
// and resolution: Resolve validates and returns the effective settings —
// every endpoint URL parsed once by ParseEndpoint and every default
// applied once — which package upstream builds its pools from. The wasm
// package's callouts check endpoints with the same ParseEndpoint.
//
// A Config is plain data: build it, validate it, and treat it as
// read-only once a server holds it. Package proxy re-exports the types as
// aliases (proxy.Config is config.Config).
package config
