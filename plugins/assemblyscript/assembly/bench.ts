import {
  Context,
  RootContext,
  FilterHeadersStatusValues,
  stream_context,
} from "@solo-io/proxy-runtime";

// BenchContext is the "headers-only" mode: one added request header, so a
// benchmark measures the cost of a callback plus one host call.
export class BenchContext extends Context {
  constructor(context_id: u32, root_context: RootContext) {
    super(context_id, root_context);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-bench", "1");
    return FilterHeadersStatusValues.Continue;
  }
}
