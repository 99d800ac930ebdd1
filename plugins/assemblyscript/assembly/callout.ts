import {
  Context,
  RootContext,
  FilterHeadersStatusValues,
  WasmResultValues,
  HeaderPair,
  Headers,
  stream_context,
  continue_request,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

// CALLOUT_POOL is the upstream pool the "callout" mode calls.
export const CALLOUT_POOL = "auth";

// CALLOUT_PATH is the :path of the call.
export const CALLOUT_PATH = "/as-callout";

const CALLOUT_TIMEOUT_MS: u32 = 2000;

function pair(k: string, v: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(k), String.UTF8.encode(v));
}

// CalloutContext is the "callout" mode: every request pauses while the
// plugin calls CALLOUT_POOL; the reply's status, x-upstream-name and body
// are answered as "x-as-callout: <status> <upstream> <body>" (or
// "x-as-callout: failed" when the call failed), then the request
// continues. A refused call answers "x-as-callout: refused <status>" and
// continues at once.
export class CalloutContext extends Context {
  result: string = "";

  constructor(context_id: u32, root_context: RootContext) {
    super(context_id, root_context);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const headers: Headers = [];
    headers.push(pair(":method", "GET"));
    headers.push(pair(":path", CALLOUT_PATH));
    headers.push(pair(":authority", "callout.test"));
    const st = this.root_context.httpCall(CALLOUT_POOL, headers, new ArrayBuffer(0), [], CALLOUT_TIMEOUT_MS, this,
      (origin: Context, headers: u32, body_size: usize, _trailers: u32): void => {
        const ctx = changetype<CalloutContext>(origin);
        if (headers == 0) {
          ctx.result = "failed";
        } else {
          const status = stream_context.headers.http_callback.get(":status");
          const upstream = stream_context.headers.http_callback.get("x-upstream-name");
          const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, body_size as u32));
          ctx.result = status + " " + upstream + " " + body;
        }
        // The SDK made the request the effective context before this call.
        const res = continue_request();
        if (res != WasmResultValues.Ok) {
          log(LogLevelValues.error, "sluice-assemblyscript: proxy_continue_stream returned " + res.toString());
        }
      });
    if (st != WasmResultValues.Ok) {
      this.result = "refused " + st.toString();
      return FilterHeadersStatusValues.Continue;
    }
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-callout", this.result);
    return FilterHeadersStatusValues.Continue;
  }
}
