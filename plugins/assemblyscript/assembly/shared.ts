import {
  Context,
  RootContext,
  FilterHeadersStatusValues,
  WasmResultValues,
  stream_context,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";
import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";

// SHARED_KEY is the shared-data key the "shared-data" mode counts requests in.
export const SHARED_KEY = "as-counter";

// MAX_CAS_ATTEMPTS bounds the get/CAS-set retry loop.
const MAX_CAS_ATTEMPTS = 1000;

// SharedOut receives the results of proxy_get_shared_data. The SDK's
// get_shared_data/set_shared_data helpers (0.1.8) pass wrong pointers, so
// this mode calls the raw imports with pointers into this object.
class SharedOut {
  data: usize = 0;
  size: usize = 0;
  cas: u32 = 0;
}

// takeBuffer returns the host's malloc'ed result as an ArrayBuffer (the
// SDK's malloc allocates an ArrayBuffer of exactly that size) and drops
// the reference malloc took, as the SDK's own helpers do.
function takeBuffer(ptr: usize, size: usize): ArrayBuffer {
  if (ptr == 0 || size == 0) {
    return new ArrayBuffer(0);
  }
  const array = changetype<ArrayBuffer>(ptr);
  free(ptr);
  return array;
}

// incrementShared adds 1 to the decimal counter under key with a get/CAS-set
// loop and returns the new value, or -1 when the host refuses.
export function incrementShared(key: string): i32 {
  const k = String.UTF8.encode(key);
  const out = new SharedOut();
  const base = changetype<usize>(out);
  for (let i = 0; i < MAX_CAS_ATTEMPTS; i++) {
    let n: i32 = 0;
    let cas: u32 = 0;
    const st = imports.proxy_get_shared_data(changetype<usize>(k), k.byteLength,
      base + offsetof<SharedOut>("data"), base + offsetof<SharedOut>("size"), base + offsetof<SharedOut>("cas"));
    if (st == WasmResultValues.Ok) {
      const value = String.UTF8.decode(takeBuffer(out.data, out.size));
      n = I32.parseInt(value);
      cas = out.cas;
    } else if (st != WasmResultValues.NotFound) {
      log(LogLevelValues.error, "sluice-assemblyscript: proxy_get_shared_data returned " + st.toString());
      return -1;
    }
    const next = String.UTF8.encode((n + 1).toString());
    const set = imports.proxy_set_shared_data(changetype<usize>(k), k.byteLength,
      changetype<usize>(next), next.byteLength, cas);
    if (set == WasmResultValues.Ok) {
      return n + 1;
    }
    if (set != WasmResultValues.CasMismatch) {
      log(LogLevelValues.error, "sluice-assemblyscript: proxy_set_shared_data returned " + set.toString());
      return -1;
    }
  }
  return -1;
}

// SharedDataContext is the "shared-data" mode: every request adds 1 to the
// shared counter SHARED_KEY; the response gets "x-as-counter: <new value>".
export class SharedDataContext extends Context {
  counter: i32 = 0;

  constructor(context_id: u32, root_context: RootContext) {
    super(context_id, root_context);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    this.counter = incrementShared(SHARED_KEY);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-counter", this.counter.toString());
    return FilterHeadersStatusValues.Continue;
  }
}
