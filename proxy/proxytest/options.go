package proxytest

import (
	"cmp"
	"fmt"
	"time"
)

// Defaults applied to the zero fields of Options.
const (
	// DefaultTokens is the number of tokens in a completion.
	DefaultTokens = 8
	// DefaultModel is the model name reported when a request names none.
	DefaultModel = "proxytest-model"
	// DefaultMaxBodyBytes caps the request body the server reads.
	DefaultMaxBodyBytes = 10 << 20
)

// Options controls how a Server answers. The zero value is a healthy server
// that answers every request at once with DefaultTokens tokens.
//
// An Options value is copied when passed to NewServer or SetOptions; later
// changes to the caller's copy (including its Models slice) have no effect.
type Options struct {
	// Name identifies the upstream. When not empty it is sent in the
	// x-upstream-name response header and as system_fingerprint in OpenAI
	// JSON replies. Default: empty (neither is sent).
	Name string

	// Tokens is the number of tokens per completion; a request's max_tokens
	// (OpenAI) or parameters.max_new_tokens (TGI), when > 0, caps it.
	// Token i has the text "tok<i> ". Default DefaultTokens (8).
	Tokens int

	// TokenDelay is the wait before each streamed token. A non-streaming
	// completion waits the sum (tokens × TokenDelay) before its reply, as a
	// real engine would. Default 0 (no wait).
	TokenDelay time.Duration

	// HeaderDelay is the wait before the response headers of every route
	// except /health and /metrics. Default 0 (no wait).
	HeaderDelay time.Duration

	// Model is the model name reported when a request names none, and the
	// model_name label of engine metrics. Default DefaultModel.
	Model string

	// Models lists the models served by GET /v1/models. Default [Model].
	Models []string

	// Fail injects a failure into every route except /health and /metrics.
	// Default FailNone.
	Fail FailMode

	// FailAfterTokens is, for FailResetMidStream, the number of token
	// events sent before the connection is reset (capped at the number of
	// tokens: the reset then comes before the usage chunk and [DONE]).
	// Default 0 (reset just after the headers).
	FailAfterTokens int

	// MaxBodyBytes caps the request body; a larger body is answered 413.
	// Default DefaultMaxBodyBytes (10 MiB).
	MaxBodyBytes int64
}

// Validate reports the first field of o that has no meaning, by name.
// Zero fields are valid: they mean the documented defaults.
func (o Options) Validate() error {
	if err := cmp.Or(
		notNegative("Tokens", o.Tokens),
		notNegative("TokenDelay", o.TokenDelay),
		notNegative("HeaderDelay", o.HeaderDelay),
		notNegative("FailAfterTokens", o.FailAfterTokens),
		notNegative("MaxBodyBytes", o.MaxBodyBytes),
	); err != nil {
		return err
	}
	if !o.Fail.valid() {
		return fmt.Errorf("proxytest: Options.Fail is %d, not a known FailMode", int(o.Fail))
	}
	for i, m := range o.Models {
		if m == "" {
			return fmt.Errorf("proxytest: Options.Models[%d] is empty", i)
		}
	}
	return nil
}

// notNegative returns the error for the field name of Options when v is
// negative, else nil.
func notNegative[T ~int | ~int64](name string, v T) error {
	if v < 0 {
		return fmt.Errorf("proxytest: Options.%s is %v, must be >= 0", name, v)
	}
	return nil
}

// withDefaults returns a copy of o with the zero fields set to their
// defaults and its own Models slice.
func (o Options) withDefaults() Options {
	if o.Tokens == 0 {
		o.Tokens = DefaultTokens
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if len(o.Models) == 0 {
		o.Models = []string{o.Model}
	} else {
		o.Models = append([]string(nil), o.Models...)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return o
}

// tokensFor returns the number of tokens to generate when the request asks
// for at most limit (0 or less: no limit), and whether the limit cut the
// completion short.
func (o *Options) tokensFor(limit int) (n int, capped bool) {
	if limit > 0 && limit < o.Tokens {
		return limit, true
	}
	return o.Tokens, false
}
