// Mode is the behaviour selected by the plugin configuration.
export enum Mode {
  Invalid = 0,
  Policy = 1,
  HeadersOnly = 2,
  SharedData = 3,
  Callout = 4,
}

// parseMode maps a plugin configuration string to a Mode; surrounding
// whitespace is ignored and an unknown value yields Mode.Invalid.
export function parseMode(config: string): Mode {
  const c = config.trim();
  if (c == "" || c == "policy") {
    return Mode.Policy;
  }
  if (c == "headers-only") {
    return Mode.HeadersOnly;
  }
  if (c == "shared-data") {
    return Mode.SharedData;
  }
  if (c == "callout") {
    return Mode.Callout;
  }
  return Mode.Invalid;
}
