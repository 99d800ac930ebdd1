import {
  Context,
  RootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  stream_context,
  send_local_response,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";

// GUEST names this toolchain in the response header and the 403 body.
export const GUEST = "assemblyscript";

const FORBIDDEN_PREFIX = "/forbidden";

// PolicyContext is the default mode: deny /forbidden*, tag responses.
export class PolicyContext extends Context {
  constructor(context_id: u32, root_context: RootContext) {
    super(context_id, root_context);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    if (!path.startsWith(FORBIDDEN_PREFIX)) {
      return FilterHeadersStatusValues.Continue;
    }
    const status = send_local_response(
      403,
      "sluice_guest_forbidden",
      String.UTF8.encode("forbidden by " + GUEST),
      [],
      -1 as GrpcStatusValues,
    );
    if (status != 0) {
      log(LogLevelValues.error, "sluice-assemblyscript: proxy_send_local_response returned " + status.toString());
    }
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-sluice-guest", GUEST);
    return FilterHeadersStatusValues.Continue;
  }
}
