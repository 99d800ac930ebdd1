// Package workload generates the request streams of the fleet benchmark:
// prompts that share a system prompt in groups, multi-turn chat sessions
// whose context grows each round, and random prompts with no sharing, and
// a Dispatcher that sends them at the ticks of a Poisson process, a
// session's round only once its previous round has finished. The requests
// and the ticks are pure functions of the parameters and a seed, so two
// runs with the same seed send the same requests at the same ticks whatever
// the routing policy under test (which rounds are ready at a tick depends
// on how fast the fleet answered).
//
// Text is made of words drawn from a fixed vocabulary of short words
// ("w1a3 wq0 …"); one word stands for one token. The lengths below are in
// words.
package workload

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Kinds of workload, in Request.Kind and Spec.Kind.
const (
	KindSharedPrefix = "shared-prefix"
	KindMultiTurn    = "multi-turn"
	KindRandom       = "random"
)

// Roles of a Message, as in the OpenAI chat API.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one chat completion to send.
type Request struct {
	// Kind is the workload it belongs to.
	Kind string
	// Group is the shared-prefix group or the chat session; -1 for a
	// random prompt.
	Group int
	// Turn is the 0-based round within a session (0 for the other kinds).
	// Round k of a session must not be sent before round k-1 has finished
	// (the Dispatcher sees to it).
	Turn int
	// Messages is the conversation. In a multi-turn session round k carries
	// the system prompt (if any), the k earlier user messages each followed
	// by an assistant answer, and the new user message. The answers here are
	// placeholders of OutputLen words; a harness that has the real answer
	// of an earlier turn puts it in their place.
	Messages []Message
	// MaxTokens is the completion length asked for (max_tokens).
	MaxTokens int
}

// PromptWords is the number of words in r's messages.
func (r *Request) PromptWords() int {
	n := 0
	for _, m := range r.Messages {
		n += len(strings.Fields(m.Content))
	}
	return n
}

// SharedPrefix is the shape of SGLang's generated-shared-prefix dataset
// (python/sglang/bench_serving.py, --gsp-* flags; defaults 64 groups × 16
// prompts per group, system prompt 2048 tokens, question 128, output 256):
// Groups system prompts, each followed by PromptsPerGroup different
// questions, all Groups × PromptsPerGroup requests shuffled (as SGLang does
// unless --gsp-ordered).
type SharedPrefix struct {
	Groups, PromptsPerGroup int
	SystemLen, QuestionLen  int
	OutputLen               int
}

// MultiTurn is the shape of SGLang's multi-turn benchmark
// (benchmark/hicache/bench_multiturn.py; defaults 256 clients × 5 rounds,
// request length 512 tokens, output 64): Sessions chat sessions of Turns
// rounds each. A session opens with its own system prompt of SystemLen
// words (0: none, as in SGLang, whose first round is one prompt of the
// request length); each round adds a user message of UserLen words and
// asks for OutputLen tokens, and carries every earlier round with its
// answer. The requests come in a random interleaving of the sessions,
// each keeping its round order; the order matters only for which rounds
// a truncated run keeps and which round-0s the Dispatcher sends first.
type MultiTurn struct {
	Sessions, Turns int
	SystemLen       int
	UserLen         int
	OutputLen       int
}

// Random is Requests prompts of PromptLen words with nothing in common.
type Random struct {
	Requests  int
	PromptLen int
	OutputLen int
}

// Spec is one workload: exactly one of the shapes is set.
type Spec struct {
	// Name labels the workload in reports.
	Name         string
	SharedPrefix *SharedPrefix
	MultiTurn    *MultiTurn
	Random       *Random
}

// Kind is the kind of the shape that is set ("" when none is).
func (s Spec) Kind() string {
	switch {
	case s.SharedPrefix != nil:
		return KindSharedPrefix
	case s.MultiTurn != nil:
		return KindMultiTurn
	case s.Random != nil:
		return KindRandom
	}
	return ""
}

// Len is the number of requests s generates (0 for an invalid s).
func (s Spec) Len() int {
	if s.Validate() != nil {
		return 0
	}
	switch {
	case s.SharedPrefix != nil:
		return s.SharedPrefix.Groups * s.SharedPrefix.PromptsPerGroup
	case s.MultiTurn != nil:
		return s.MultiTurn.Sessions * s.MultiTurn.Turns
	}
	return s.Random.Requests
}

// Validate names the first field of s that has no meaning.
func (s Spec) Validate() error {
	set := 0
	for _, b := range []bool{s.SharedPrefix != nil, s.MultiTurn != nil, s.Random != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("workload: spec %q: exactly one of SharedPrefix, MultiTurn and Random must be set, %d are", s.Name, set)
	}
	pos := func(field string, v int) error {
		if v < 1 {
			return fmt.Errorf("workload: spec %q: %s is %d, must be >= 1", s.Name, field, v)
		}
		return nil
	}
	var checks []error
	switch {
	case s.SharedPrefix != nil:
		p := s.SharedPrefix
		checks = []error{pos("SharedPrefix.Groups", p.Groups), pos("SharedPrefix.PromptsPerGroup", p.PromptsPerGroup),
			pos("SharedPrefix.SystemLen", p.SystemLen), pos("SharedPrefix.QuestionLen", p.QuestionLen), pos("SharedPrefix.OutputLen", p.OutputLen)}
	case s.MultiTurn != nil:
		m := s.MultiTurn
		var sys error
		if m.SystemLen < 0 {
			sys = fmt.Errorf("workload: spec %q: MultiTurn.SystemLen is %d, must be >= 0", s.Name, m.SystemLen)
		}
		checks = []error{pos("MultiTurn.Sessions", m.Sessions), pos("MultiTurn.Turns", m.Turns),
			sys, pos("MultiTurn.UserLen", m.UserLen), pos("MultiTurn.OutputLen", m.OutputLen)}
	default:
		r := s.Random
		checks = []error{pos("Random.Requests", r.Requests), pos("Random.PromptLen", r.PromptLen), pos("Random.OutputLen", r.OutputLen)}
	}
	return errors.Join(checks...)
}

// Requests returns the requests of s in their order (a Dispatcher sends
// them in that order as far as sessions allow). The same seed gives the
// same requests.
func (s Spec) Requests(seed int64) ([]Request, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_f1ee7))
	switch {
	case s.SharedPrefix != nil:
		return sharedPrefix(*s.SharedPrefix, rng), nil
	case s.MultiTurn != nil:
		return multiTurn(*s.MultiTurn, rng), nil
	default:
		return random(*s.Random, rng), nil
	}
}

// Generate returns the first n requests of s (all when n <= 0 or n is
// larger). Truncating keeps each session's first rounds, so the result is
// always a valid input of NewDispatcher.
func (s Spec) Generate(seed int64, n int) ([]Request, error) {
	reqs, err := s.Requests(seed)
	if err != nil {
		return nil, err
	}
	if n > 0 && n < len(reqs) {
		reqs = reqs[:n]
	}
	return reqs, nil
}

// Arrivals returns the first n ticks of the Poisson process of rate
// requests per second and seed that a Dispatcher sends at: the gaps are
// independent and exponentially distributed with mean 1/rate, and the
// first tick comes after one gap.
func Arrivals(n int, rate float64, seed int64) ([]time.Duration, error) {
	if n < 0 {
		return nil, fmt.Errorf("workload: n is %d, must be >= 0", n)
	}
	p, err := newPoisson(rate, seed)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = p.next()
	}
	return out, nil
}

// poisson is the tick sequence of a Poisson process; not safe for
// concurrent use.
type poisson struct {
	rng  *rand.Rand
	rate float64
	t    float64 // seconds
}

func newPoisson(rate float64, seed int64) (*poisson, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("workload: rate is %v, must be a finite number > 0", rate)
	}
	return &poisson{rng: rand.New(rand.NewPCG(uint64(seed), 0xa771_7a1)), rate: rate}, nil
}

// next returns the next tick, from the start of the run.
func (p *poisson) next() time.Duration {
	p.t += p.rng.ExpFloat64() / p.rate
	return time.Duration(p.t * float64(time.Second))
}

func sharedPrefix(p SharedPrefix, rng *rand.Rand) []Request {
	systems := make([]string, p.Groups)
	for g := range systems {
		systems[g] = text(rng, p.SystemLen)
	}
	reqs := make([]Request, 0, p.Groups*p.PromptsPerGroup)
	for g := 0; g < p.Groups; g++ {
		for q := 0; q < p.PromptsPerGroup; q++ {
			reqs = append(reqs, Request{
				Kind: KindSharedPrefix, Group: g, MaxTokens: p.OutputLen,
				Messages: []Message{{RoleSystem, systems[g]}, {RoleUser, text(rng, p.QuestionLen)}},
			})
		}
	}
	rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	return reqs
}

func multiTurn(m MultiTurn, rng *rand.Rand) []Request {
	// The order of sessions' turns: Turns copies of each session id,
	// shuffled; the k-th appearance of a session is its turn k.
	order := make([]int, 0, m.Sessions*m.Turns)
	for s := 0; s < m.Sessions; s++ {
		for t := 0; t < m.Turns; t++ {
			order = append(order, s)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	history := make([][]Message, m.Sessions)
	for s := range history {
		if m.SystemLen > 0 {
			history[s] = []Message{{RoleSystem, text(rng, m.SystemLen)}}
		}
	}
	reqs := make([]Request, 0, len(order))
	for _, s := range order {
		turn := len(history[s]) / 2
		history[s] = append(history[s], Message{RoleUser, text(rng, m.UserLen)})
		reqs = append(reqs, Request{
			Kind: KindMultiTurn, Group: s, Turn: turn, MaxTokens: m.OutputLen,
			Messages: append([]Message(nil), history[s]...),
		})
		history[s] = append(history[s], Message{RoleAssistant, text(rng, m.OutputLen)})
	}
	return reqs
}

func random(r Random, rng *rand.Rand) []Request {
	reqs := make([]Request, r.Requests)
	for i := range reqs {
		reqs[i] = Request{Kind: KindRandom, Group: -1, MaxTokens: r.OutputLen,
			Messages: []Message{{RoleUser, text(rng, r.PromptLen)}}}
	}
	return reqs
}

// vocabulary is the number of distinct words text draws from.
const vocabulary = 1 << 14

// text returns n words drawn uniformly from the vocabulary.
func text(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n * 5)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('w')
		b.WriteString(strconv.FormatInt(int64(rng.IntN(vocabulary)), 36))
	}
	return b.String()
}
