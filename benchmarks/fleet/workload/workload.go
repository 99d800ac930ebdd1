// Package workload generates the request streams of the fleet benchmark:
// prompts that share a system prompt in groups, multi-turn chat sessions
// whose context grows each turn, and random prompts with no sharing, each
// with Poisson arrivals. Everything is a pure function of its parameters
// and a seed, so two runs with the same seed send the same requests at the
// same offsets whatever the routing policy under test.
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
	// At is the arrival time, from the start of the run, in simulated
	// time (the harness divides it by the engines' time scale).
	At time.Duration
	// Kind is the workload it belongs to.
	Kind string
	// Group is the shared-prefix group or the chat session; -1 for a
	// random prompt.
	Group int
	// Turn is the 0-based turn within a session (0 for the other kinds).
	// Turn k of a session must not be sent before turn k-1 has finished.
	Turn int
	// Messages is the conversation. In a multi-turn session turn k carries
	// the system prompt, the k earlier user messages each followed by an
	// assistant answer, and the new user message. The answers here are
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

// MultiTurn is Sessions chat sessions of Turns turns each. Every session
// has its own system prompt of SystemLen words; each turn adds a user
// message of UserLen words and asks for OutputLen tokens. Sessions are
// interleaved at random, each keeping its turn order.
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
		checks = []error{pos("MultiTurn.Sessions", m.Sessions), pos("MultiTurn.Turns", m.Turns),
			pos("MultiTurn.SystemLen", m.SystemLen), pos("MultiTurn.UserLen", m.UserLen), pos("MultiTurn.OutputLen", m.OutputLen)}
	default:
		r := s.Random
		checks = []error{pos("Random.Requests", r.Requests), pos("Random.PromptLen", r.PromptLen), pos("Random.OutputLen", r.OutputLen)}
	}
	return errors.Join(checks...)
}

// Requests returns the requests of s in sending order, without arrival
// times (At is 0). The same seed gives the same requests.
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
// larger) with Poisson arrivals at rate requests per simulated second.
func (s Spec) Generate(seed int64, n int, rate float64) ([]Request, error) {
	reqs, err := s.Requests(seed)
	if err != nil {
		return nil, err
	}
	if n > 0 && n < len(reqs) {
		reqs = reqs[:n]
	}
	at, err := Arrivals(len(reqs), rate, seed)
	if err != nil {
		return nil, err
	}
	for i := range reqs {
		reqs[i].At = at[i]
	}
	return reqs, nil
}

// Arrivals returns n arrival offsets of a Poisson process of rate
// requests per second: the gaps are independent and exponentially
// distributed with mean 1/rate. The first request arrives after one gap.
func Arrivals(n int, rate float64, seed int64) ([]time.Duration, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("workload: rate is %v, must be a finite number > 0", rate)
	}
	if n < 0 {
		return nil, fmt.Errorf("workload: n is %d, must be >= 0", n)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xa771_7a1))
	out := make([]time.Duration, n)
	var t float64
	for i := range out {
		t += rng.ExpFloat64() / rate
		out[i] = time.Duration(t * float64(time.Second))
	}
	return out, nil
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
		history[s] = []Message{{RoleSystem, text(rng, m.SystemLen)}}
	}
	reqs := make([]Request, 0, len(order))
	for _, s := range order {
		turn := (len(history[s]) - 1) / 2
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
