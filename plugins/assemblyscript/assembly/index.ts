// Sluice test plugin written with the third-party AssemblyScript Proxy-Wasm
// SDK (@solo-io/proxy-runtime 0.1.8). It mirrors plugins/c/plugin.c so that
// tests can compare guests built with different toolchains.
//
// The plugin configuration (a plain string) selects a mode:
//
//   ""  or "policy"  (default) requests whose :path starts with /forbidden get
//                    a local 403 "forbidden by assemblyscript" and PAUSE; every
//                    response gets "x-sluice-guest: assemblyscript".
//   "headers-only"   every request gets one added header "x-bench: 1"
//                    (for benchmarks); nothing else.
//   "shared-data"    every request adds 1 to the shared-data counter
//                    "as-counter" (get, then CAS set, retried on
//                    CAS_MISMATCH); the response gets "x-as-counter: <n>".
//   "callout"        every request pauses while the plugin calls pool
//                    "auth" (GET /as-callout); the response gets
//                    "x-as-callout: <status> <x-upstream-name> <body>", or
//                    "failed" / "refused <status>".
//
// Any other configuration makes proxy_on_configure return false.
//
// To add a mode, add a constant to Mode, a case in parseMode and a Context
// subclass in its own file, then return it from SluiceRoot.createContext.

// Re-export the SDK's ABI entry points (proxy_on_*, malloc, free,
// proxy_abi_version_0_2_0) so the host can call them.
export * from "@solo-io/proxy-runtime/proxy";

import {
  RootContext,
  Context,
  registerRootContext,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";
import { Mode, parseMode } from "./mode";
import { PolicyContext } from "./policy";
import { BenchContext } from "./bench";
import { SharedDataContext } from "./shared";
import { CalloutContext } from "./callout";

// ROOT_ID is the plugin_root_id this plugin registers under. The SDK reads the
// property "plugin_root_id" when the root context is created and aborts if no
// factory is registered for the returned value; an empty value (Envoy's
// default root_id) maps to "".
const ROOT_ID = "";

class SluiceRoot extends RootContext {
  mode: Mode = Mode.Policy;

  // onConfigure replaces the SDK's version, which passes the configuration
  // size where the host expects a pointer for the returned size (0.1.8 bug).
  onConfigure(configuration_size: u32): bool {
    let config = "";
    if (configuration_size > 0) {
      const raw = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
      config = String.UTF8.decode(raw);
    }
    const mode = parseMode(config);
    if (mode == Mode.Invalid) {
      log(LogLevelValues.error, "sluice-assemblyscript: unknown configuration \"" + config + "\"; want \"\", \"policy\", \"headers-only\", \"shared-data\" or \"callout\"");
      return false;
    }
    this.mode = mode;
    return true;
  }

  createContext(context_id: u32): Context {
    if (this.mode == Mode.HeadersOnly) {
      return new BenchContext(context_id, this);
    }
    if (this.mode == Mode.SharedData) {
      return new SharedDataContext(context_id, this);
    }
    if (this.mode == Mode.Callout) {
      return new CalloutContext(context_id, this);
    }
    return new PolicyContext(context_id, this);
  }
}

registerRootContext((context_id: u32): RootContext => {
  return new SluiceRoot(context_id);
}, ROOT_ID);
