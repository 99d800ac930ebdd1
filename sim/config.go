package sim

import (
	"cmp"
	"errors"
	"math"
	"strconv"
	"time"
)

// Config describes one simulated engine. Zero values mean the documented
// defaults; New applies them once and validates the result.
type Config struct {
	// Model is the served model name; default "sim-llama-3-8b".
	Model string
	// MaxNumSeqs is the most sequences running at once (vLLM
	// max_num_seqs); default 256.
	MaxNumSeqs int
	// MaxBatchedTokens is the token budget of one step, shared by prefill
	// chunks and decode tokens (vLLM max_num_batched_tokens); default 8192.
	MaxBatchedTokens int
	// BlockSize is the KV block size in tokens; default 16, as vLLM.
	BlockSize int
	// NumBlocks is the KV cache capacity in blocks. The default, 27,648
	// (442,368 tokens), is Llama-3-8B on one H100 80 GB at vLLM's
	// gpu_memory_utilization 0.9: 72 GiB, less 15 GiB of BF16 weights
	// (8.03e9 × 2 bytes) and ~3 GiB of activations and CUDA graphs, leaves
	// 54 GiB; one token's KV is 2 (K and V) × 32 layers × 8 KV heads × 128
	// dims × 2 bytes = 128 KiB, so a 16-token block is 2 MiB and 54 GiB
	// hold 27,648 blocks.
	NumBlocks int
	// MaxModelLen is the context window in tokens (prompt plus output);
	// default 8192 (Llama-3-8B's), or the whole cache if that is smaller.
	MaxModelLen int
	// TimeScale is simulated seconds per wall second; default 1 (real
	// time); 10 runs ten times faster than real time.
	TimeScale float64
	// Seed feeds the output words and natural output lengths; default 1.
	Seed int64

	// Time model (see the package doc for the measurements behind them):
	// a step takes StepOverhead + PrefillPerToken × prefilled tokens +
	// DecodePerSeq × decoding sequences.

	// StepOverhead is the fixed cost of a step; default 6 ms.
	StepOverhead time.Duration
	// PrefillPerToken is the cost of one uncached prompt token; default 40 µs.
	PrefillPerToken time.Duration
	// DecodePerSeq is the cost of one sequence in a decode step; default 60 µs.
	DecodePerSeq time.Duration
}

// Defaults, documented on the Config fields.
const (
	DefaultModel            = "sim-llama-3-8b"
	DefaultMaxNumSeqs       = 256
	DefaultMaxBatchedTokens = 8192
	DefaultBlockSize        = 16
	DefaultNumBlocks        = 27648
	DefaultMaxModelLen      = 8192
	DefaultStepOverhead     = 6 * time.Millisecond
	DefaultPrefillPerToken  = 40 * time.Microsecond
	DefaultDecodePerSeq     = 60 * time.Microsecond
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Model = cmp.Or(c.Model, DefaultModel)
	c.MaxNumSeqs = cmp.Or(c.MaxNumSeqs, DefaultMaxNumSeqs)
	c.MaxBatchedTokens = cmp.Or(c.MaxBatchedTokens, DefaultMaxBatchedTokens)
	c.BlockSize = cmp.Or(c.BlockSize, DefaultBlockSize)
	c.NumBlocks = cmp.Or(c.NumBlocks, DefaultNumBlocks)
	if c.MaxModelLen == 0 && c.BlockSize > 0 && c.NumBlocks > 0 {
		c.MaxModelLen = min(DefaultMaxModelLen, c.NumBlocks*c.BlockSize)
	}
	c.TimeScale = cmp.Or(c.TimeScale, 1)
	c.Seed = cmp.Or(c.Seed, 1)
	c.StepOverhead = cmp.Or(c.StepOverhead, DefaultStepOverhead)
	c.PrefillPerToken = cmp.Or(c.PrefillPerToken, DefaultPrefillPerToken)
	c.DecodePerSeq = cmp.Or(c.DecodePerSeq, DefaultDecodePerSeq)
	return c
}

// validate reports the first bad field of a defaulted config.
func (c Config) validate() error {
	bad := func(field, why string) error { return errors.New("sim: config: " + field + ": " + why) }
	switch {
	case c.MaxNumSeqs < 0:
		return bad("MaxNumSeqs", "must be positive, got "+strconv.Itoa(c.MaxNumSeqs))
	case c.MaxBatchedTokens < 0:
		return bad("MaxBatchedTokens", "must be positive, got "+strconv.Itoa(c.MaxBatchedTokens))
	case c.BlockSize < 0 || c.BlockSize > 1<<16:
		return bad("BlockSize", "must be 1 to 65536, got "+strconv.Itoa(c.BlockSize))
	case c.NumBlocks < 0 || c.NumBlocks > 1<<30:
		return bad("NumBlocks", "must be 1 to 2^30, got "+strconv.Itoa(c.NumBlocks))
	case c.MaxModelLen < 2:
		return bad("MaxModelLen", "must be at least 2, got "+strconv.Itoa(c.MaxModelLen))
	case c.MaxModelLen > c.NumBlocks*c.BlockSize:
		return bad("MaxModelLen", strconv.Itoa(c.MaxModelLen)+" tokens do not fit in the KV cache ("+
			strconv.Itoa(c.NumBlocks)+" blocks of "+strconv.Itoa(c.BlockSize)+" tokens)")
	case c.MaxBatchedTokens < c.MaxNumSeqs:
		return bad("MaxBatchedTokens", "must be at least MaxNumSeqs ("+strconv.Itoa(c.MaxNumSeqs)+
			"), so every running sequence can decode in one step")
	case math.IsNaN(c.TimeScale) || math.IsInf(c.TimeScale, 0) || c.TimeScale < 0:
		return bad("TimeScale", "must be a positive finite number, got "+strconv.FormatFloat(c.TimeScale, 'g', -1, 64))
	case c.StepOverhead < 0:
		return bad("StepOverhead", "must not be negative, got "+c.StepOverhead.String())
	case c.PrefillPerToken < 0:
		return bad("PrefillPerToken", "must not be negative, got "+c.PrefillPerToken.String())
	case c.DecodePerSeq < 0:
		return bad("DecodePerSeq", "must not be negative, got "+c.DecodePerSeq.String())
	}
	for _, r := range c.Model {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return bad("Model", "must be printable, without quotes or backslashes: "+strconv.Quote(c.Model))
		}
	}
	return nil
}
