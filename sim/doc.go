// Package sim is a simulated LLM inference engine: an OpenAI-compatible HTTP
// server whose latency, batching, KV-cache and metrics behave like vLLM's
// V1 engine serving Llama-3-8B on one H100 80 GB, without a GPU or weights.
// Sluice uses it for `sluice -demo`, for tests and for fleet benchmarks.
//
// # What it simulates
//
// Continuous batching as vLLM's V1 scheduler does it: at most
// [Config.MaxNumSeqs] running sequences and a FIFO waiting queue. Each step
// first gives every running sequence the tokens it needs (one decode token,
// or the rest of a chunked prefill), then admits waiting requests while the
// token budget ([Config.MaxBatchedTokens]) and the KV cache allow; a prefill
// larger than what is left of the budget is chunked across steps.
//
// A paged KV cache with prefix caching: blocks of [Config.BlockSize] tokens,
// each full block named by a hash chaining its parent block's hash and its
// own tokens, so equal prefixes give equal block ids. A block is named as
// soon as the step that computes it is scheduled, as vLLM V1's
// KVCacheManager.allocate_slots does, so a request admitted later in the
// same step already shares it. Blocks are shared by reference count; a block whose count drops to zero stays cached in an LRU
// free queue and is evicted from its head only when a block is needed. A
// running sequence that cannot get a block preempts the most recently
// admitted running sequence (recompute, as vLLM V1 does): its blocks are
// freed and it goes back to the front of the waiting queue, keeping the
// tokens it already generated.
//
// # Time model
//
// A step takes StepOverhead + PrefillPerToken × (uncached tokens prefilled
// in the step) + DecodePerSeq × (sequences decoding one token). The
// defaults are calibrated on Llama-3-8B (BF16) on one H100 80 GB:
//
//   - StepOverhead 6 ms and DecodePerSeq 60 µs: a single stream decodes at
//     6.48 ms per output token (p50 TPOT, vLLM 0.21, Llama-3.1-8B-Instruct,
//     H100-80GB HBM3; InferenceBench concurrency-sweep recipe), which is
//     overhead + one sequence; the slope comes from the ~12,500 output tok/s
//     reported for Llama-3.1-8B BF16 on one H100 at high concurrency
//     (morphllm.com vLLM benchmarks): at 256 sequences a step is
//     6 + 256 × 0.06 = 21.4 ms, i.e. 12,000 tok/s.
//   - PrefillPerToken 40 µs (25,000 prompt tok/s): 2 × 8.03e9 FLOPs per
//     token over the H100's 989 TFLOP/s dense BF16 at 40 % utilisation is
//     40.6 µs; SGLang's bench_latency on Meta-Llama-3-8B (80 GB GPU, batch
//     1, 128-token input) measured 11.94 ms for the prefill, i.e.
//     (11.94 − 6) / 128 ≈ 46 µs per token at that small size.
//
// So a 1,024-token uncached prompt takes ~47 ms to its first token, a
// fully cached one ~6 ms.
//
// Simulated time runs [Config.TimeScale] times faster than wall time: the
// scheduler sleeps step/TimeScale per step (against a deadline, so sleep
// overshoot does not accumulate). TTFT in /metrics is in simulated seconds.
// A scheduler more than 20 ms behind its pace (a starved or paused
// process) forgives the excess rather than answering with a burst of
// steps; [Stats].Stalled totals what it forgave, so a benchmark can tell
// that its clients' latencies include time the model did not spend.
//
// # Tokenizer and chat template
//
// A fixed rule, not a vocabulary: every 4 bytes of the prompt are one token
// (the last token may be shorter), the rule of thumb OpenAI gives for
// English text. The same prompt always gives the same tokens and blocks,
// and two prompts that share a prefix share its full blocks. Chat messages
// are rendered in order as "<|ROLE|>\nCONTENT\n" and the prompt ends with
// "<|assistant|>\n"; a content array contributes its "text" parts, joined.
//
// # Output
//
// Output tokens are 4-byte words ("the ", "and ", …) picked by a hash of
// Config.Seed, the prompt and the token's index, so an identical request
// gets an identical answer (as greedy decoding would). The "model" stops
// (finish_reason "stop") after a natural length of 32 to 512 tokens, drawn
// the same way; max_tokens (or max_completion_tokens) caps it
// (finish_reason "length"), and ignore_eos makes the output exactly
// max_tokens long. Without max_tokens the cap is the room left in the
// context window, as in vLLM.
//
// # HTTP API
//
// POST /v1/chat/completions and /v1/completions (streaming as SSE, one event
// per token, ending with "data: [DONE]"; stream_options.include_usage),
// GET /v1/models, GET /health and GET /metrics with vLLM's metric names.
// A client that disconnects frees its sequence and blocks at once.
package sim
