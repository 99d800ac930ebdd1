package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// moduleInfo is what the load-time check learned about a module's exports.
type moduleInfo struct {
	abi        string // the proxy_abi_version_* export found
	alloc      string // proxy_on_memory_allocate, malloc, or "" (none)
	initialize bool   // exports _initialize (a reactor)
	main       bool   // exports main(i32, i32) -> i32, called after _initialize
	start      bool   // exports _start (called when there is no _initialize)
	// startSection: the module had a start section, which addStopChecks
	// turned into the startExport export; it runs first.
	startSection bool
}

// validatePluginConfig checks the fields the wasm package interprets.
func validatePluginConfig(pc proxy.PluginConfig) error {
	switch {
	case pc.Name == "":
		return errors.New("name is empty")
	case pc.Path == "":
		return errors.New("path is empty")
	case pc.Instances < 0:
		return fmt.Errorf("instances is %d, want 0 (GOMAXPROCS) or more", pc.Instances)
	case pc.CallTimeout < 0:
		return fmt.Errorf("call_timeout is %v, want 0 (default) or more", pc.CallTimeout)
	case pc.MemoryLimit < 0:
		return fmt.Errorf("memory_limit is %d, want 0 (default) or more", pc.MemoryLimit)
	case pc.MemoryLimit != 0 && pc.MemoryLimit < pageSize:
		return fmt.Errorf("memory_limit is %d bytes, below one 64 KiB Wasm page", pc.MemoryLimit)
	case pc.FailurePolicy != "" && pc.FailurePolicy != proxy.FailClosed && pc.FailurePolicy != proxy.FailOpen:
		return fmt.Errorf("failure_policy is %q, want %q or %q", pc.FailurePolicy, proxy.FailClosed, proxy.FailOpen)
	}
	return nil
}

// compile reads, compiles and checks the plugin's module. The module is
// compiled with stop checks (addStopChecks).
func (h *Host) compile(ctx context.Context, pc proxy.PluginConfig) (wazero.CompiledModule, moduleInfo, error) {
	if err := validatePluginConfig(pc); err != nil {
		return nil, moduleInfo{}, pluginError(pc.Name, err)
	}
	code, err := os.ReadFile(pc.Path)
	if err != nil {
		return nil, moduleInfo{}, pluginError(pc.Name, err)
	}
	compiled, err := h.compileWithStopChecks(ctx, code)
	if err != nil {
		return nil, moduleInfo{}, pluginError(pc.Name, fmt.Errorf("%s: %w", pc.Path, err))
	}
	info, err := h.checkModule(compiled, memoryLimit(pc))
	if err != nil {
		_ = compiled.Close(ctx)
		return nil, moduleInfo{}, pluginError(pc.Name, fmt.Errorf("%s: %w", pc.Path, err))
	}
	return compiled, info, nil
}

// compileWithStopChecks adds stop checks to code and compiles the result.
// A module the rewrite refuses (malformed, beyond WebAssembly 2.0, over a
// limit) gets the rewrite's error, which names the section, function and
// offset; the original is not handed to the compiler, which trusts vector
// counts and can allocate gigabytes for a malformed one (see scanModule).
// When the rewritten module does not compile, the compiler's error for the
// module as written is returned, in the module's own terms (the rewrite
// shifts function indices and offsets).
func (h *Host) compileWithStopChecks(ctx context.Context, code []byte) (wazero.CompiledModule, error) {
	checked, err := addStopChecks(code)
	if err != nil {
		return nil, err
	}
	compiled, err := h.rt.CompileModule(ctx, checked)
	if err == nil {
		return compiled, nil
	}
	orig, oerr := h.rt.CompileModule(ctx, code)
	if oerr != nil {
		return nil, oerr
	}
	_ = orig.Close(ctx)
	return nil, fmt.Errorf("the module with stop checks does not compile (a host bug): %w", err)
}

// checkModule checks the module's ABI marker, callbacks, memory and
// imports, so that a bad module fails at load with a message naming what is
// wrong rather than at its first request.
func (h *Host) checkModule(m wazero.CompiledModule, memLimit uint64) (moduleInfo, error) {
	var info moduleInfo
	exports := m.ExportedFunctions()
	switch {
	case exports[exportABI021] != nil:
		info.abi = exportABI021
	case exports[exportABI020] != nil:
		info.abi = exportABI020
	case exports[exportABI02100] != nil:
		info.abi = exportABI02100
	case exports[exportABI010] != nil:
		return info, errors.New("uses Proxy-Wasm ABI v0.1.0 (exports " + exportABI010 +
			"), which this host does not support: rebuild it with an SDK for ABI v0.2.0 or v0.2.1")
	default:
		return info, errors.New("exports neither " + exportABI021 + " nor " + exportABI020 +
			": not a Proxy-Wasm v0.2 module")
	}
	if exports[exportContextCreate] == nil {
		return info, errors.New("does not export " + exportContextCreate)
	}
	for _, spec := range callbackSpecs {
		var results []api.ValueType
		if spec.returns {
			results = []api.ValueType{api.ValueTypeI32}
		}
		if err := checkExport(exports, spec.name, i32s(spec.params), results); err != nil {
			return info, err
		}
	}
	for _, name := range []string{exportMemoryAlloc, exportMalloc} {
		if exports[name] == nil {
			continue
		}
		if err := checkExport(exports, name, i32s(1), i32s(1)); err != nil {
			return info, err
		}
		if info.alloc == "" {
			info.alloc = name
		}
	}
	for _, name := range []string{exportInitialize, exportStart} {
		if err := checkExport(exports, name, nil, nil); err != nil {
			return info, err
		}
	}
	info.initialize = exports[exportInitialize] != nil
	info.start = exports[exportStart] != nil
	info.startSection = exports[startExport] != nil
	if info.initialize && exports[exportMain] != nil {
		if err := checkExport(exports, exportMain, i32s(2), i32s(1)); err != nil {
			return info, err
		}
		info.main = true
	}
	if err := checkMemory(m, memLimit); err != nil {
		return info, err
	}
	return info, h.checkImports(m)
}

func checkMemory(m wazero.CompiledModule, memLimit uint64) error {
	for _, im := range m.ImportedMemories() {
		mod, name, _ := im.Import()
		return fmt.Errorf("imports its memory (%s.%s); it must define and export its own", mod, name)
	}
	mems := m.ExportedMemories()
	if len(mems) == 0 {
		return errors.New(`does not export its memory (want an export named "memory")`)
	}
	for name, md := range mems {
		if uint64(md.Min())*pageSize > memLimit {
			return fmt.Errorf("memory %q needs %d pages (%d bytes) at start, over memory_limit %d bytes",
				name, md.Min(), uint64(md.Min())*pageSize, memLimit)
		}
	}
	return nil
}

// checkImports checks that every imported function exists in the host's
// modules with the same signature.
func (h *Host) checkImports(m wazero.CompiledModule) error {
	for _, fd := range m.ImportedFunctions() {
		modName, name, _ := fd.Import()
		hm := h.rt.Module(modName)
		if hm == nil {
			return fmt.Errorf("imports %s.%s from module %q, which this host does not provide (it has env, wasi_snapshot_preview1 and wasi_unstable)", modName, name, modName)
		}
		def := hm.ExportedFunctionDefinitions()[name]
		if def == nil {
			return fmt.Errorf("imports %s.%s, which this host does not provide", modName, name)
		}
		if !sameTypes(def.ParamTypes(), fd.ParamTypes()) || !sameTypes(def.ResultTypes(), fd.ResultTypes()) {
			return fmt.Errorf("imports %s.%s with signature %s, but the host's is %s", modName, name,
				signature(fd.ParamTypes(), fd.ResultTypes()), signature(def.ParamTypes(), def.ResultTypes()))
		}
	}
	return nil
}

// checkExport checks the signature of an optional export.
func checkExport(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	fd := exports[name]
	if fd == nil {
		return nil
	}
	if !sameTypes(fd.ParamTypes(), params) || !sameTypes(fd.ResultTypes(), results) {
		return fmt.Errorf("exports %s with signature %s, want %s", name,
			signature(fd.ParamTypes(), fd.ResultTypes()), signature(params, results))
	}
	return nil
}

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// signature formats a function type as "(i32 i32) -> i32".
func signature(params, results []api.ValueType) string {
	var b strings.Builder
	writeTypeList(&b, params)
	b.WriteString(" -> ")
	if len(results) == 1 {
		b.WriteString(api.ValueTypeName(results[0]))
	} else {
		writeTypeList(&b, results)
	}
	return b.String()
}

// writeTypeList writes ts as "(i32 i64)", or "()" when ts is empty.
func writeTypeList(b *strings.Builder, ts []api.ValueType) {
	b.WriteByte('(')
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(api.ValueTypeName(t))
	}
	b.WriteByte(')')
}
