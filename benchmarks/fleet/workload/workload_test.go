package workload

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	testShared = Spec{Name: "sp", SharedPrefix: &SharedPrefix{Groups: 4, PromptsPerGroup: 5, SystemLen: 50, QuestionLen: 7, OutputLen: 9}}
	testMulti  = Spec{Name: "mt", MultiTurn: &MultiTurn{Sessions: 6, Turns: 4, SystemLen: 20, UserLen: 5, OutputLen: 8}}
	// testMultiNoSystem is SGLang's shape: no system prompt.
	testMultiNoSystem = Spec{Name: "mt0", MultiTurn: &MultiTurn{Sessions: 5, Turns: 3, SystemLen: 0, UserLen: 6, OutputLen: 8}}
	testRandom        = Spec{Name: "rnd", Random: &Random{Requests: 30, PromptLen: 40, OutputLen: 3}}
)

// requests returns the requests s generates with seed, failing the test
// on an error or when there are not want of them.
func requests(t *testing.T, s Spec, seed int64, want int) []Request {
	t.Helper()
	reqs, err := s.Requests(seed)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != want {
		t.Fatalf("%s: %d requests, want %d", s.Name, len(reqs), want)
	}
	return reqs
}

func TestDeterministicForSeed(t *testing.T) {
	for _, s := range []Spec{testShared, testMulti, testRandom} {
		a, err := s.Generate(7, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Generate(7, 0)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two generations with seed 7 differ", s.Name)
		}
		c, _ := s.Generate(8, 0)
		if reflect.DeepEqual(a, c) {
			t.Fatalf("%s: seeds 7 and 8 gave the same requests", s.Name)
		}
	}
}

func TestSharedPrefixShape(t *testing.T) {
	reqs := requests(t, testShared, 1, 4*5)
	systems := map[int]string{}
	perGroup := map[int]int{}
	questions := map[string]bool{}
	inOrder := true
	for i, r := range reqs {
		if r.Kind != KindSharedPrefix || len(r.Messages) != 2 || r.Messages[0].Role != RoleSystem || r.Messages[1].Role != RoleUser || r.MaxTokens != 9 {
			t.Fatalf("request %d: %+v", i, r)
		}
		if n := len(strings.Fields(r.Messages[0].Content)); n != 50 {
			t.Fatalf("system prompt of %d words, want 50", n)
		}
		if n := len(strings.Fields(r.Messages[1].Content)); n != 7 {
			t.Fatalf("question of %d words, want 7", n)
		}
		if s, ok := systems[r.Group]; ok && s != r.Messages[0].Content {
			t.Fatalf("group %d has two system prompts", r.Group)
		}
		systems[r.Group] = r.Messages[0].Content
		perGroup[r.Group]++
		questions[r.Messages[1].Content] = true
		if i > 0 && r.Group < reqs[i-1].Group {
			inOrder = false
		}
	}
	if len(systems) != 4 || len(questions) != 20 {
		t.Fatalf("%d groups, %d distinct questions; want 4 and 20", len(systems), len(questions))
	}
	for g, n := range perGroup {
		if n != 5 {
			t.Fatalf("group %d has %d prompts, want 5", g, n)
		}
	}
	if inOrder {
		t.Fatal("requests are in group order; they must be shuffled")
	}
	if systems[0] == systems[1] {
		t.Fatal("groups share a system prompt")
	}
}

func TestMultiTurnContextGrows(t *testing.T) {
	multiTurnGrows(t, testMulti, 6*4, 1, 5)
	multiTurnGrows(t, testMultiNoSystem, 5*3, 0, 6)
}

// multiTurnGrows checks that every round of s (want requests) starts with
// sys system messages, alternates user and assistant messages, and
// carries the previous round of its session and its answer.
func multiTurnGrows(t *testing.T, s Spec, want, sys, userLen int) {
	t.Helper()
	reqs := requests(t, s, 3, want)
	last := map[int]Request{}
	for _, r := range reqs {
		prev, seen := last[r.Group]
		wantTurn := 0
		if seen {
			wantTurn = prev.Turn + 1
		}
		if r.Turn != wantTurn {
			t.Fatalf("session %d: turn %d after turn %d", r.Group, r.Turn, prev.Turn)
		}
		if len(r.Messages) != sys+1+2*r.Turn {
			t.Fatalf("turn %d has %d messages, want %d", r.Turn, len(r.Messages), sys+1+2*r.Turn)
		}
		for i, m := range r.Messages {
			want := RoleSystem
			switch {
			case i < sys:
			case (i-sys)%2 == 0:
				want = RoleUser
			default:
				want = RoleAssistant
			}
			if m.Role != want {
				t.Fatalf("turn %d message %d is %s, want %s", r.Turn, i, m.Role, want)
			}
			if want == RoleAssistant && len(strings.Fields(m.Content)) != 8 {
				t.Fatalf("answer placeholder of %d words, want 8", len(strings.Fields(m.Content)))
			}
		}
		if seen {
			// All of the previous turn's messages, then its answer and a new question.
			if !reflect.DeepEqual(r.Messages[:len(prev.Messages)], prev.Messages) {
				t.Fatalf("session %d turn %d does not start with turn %d's messages", r.Group, r.Turn, prev.Turn)
			}
			if r.PromptWords() != prev.PromptWords()+8+userLen {
				t.Fatalf("prompt grew from %d to %d words, want +%d", prev.PromptWords(), r.PromptWords(), 8+userLen)
			}
		} else if r.PromptWords() != s.MultiTurn.SystemLen+userLen {
			t.Fatalf("round 0 of %d words, want %d", r.PromptWords(), s.MultiTurn.SystemLen+userLen)
		}
		last[r.Group] = r
	}
	if last[0].Messages[0].Content == last[1].Messages[0].Content {
		t.Fatal("sessions share their first message")
	}
}

func TestRandomShape(t *testing.T) {
	reqs := requests(t, testRandom, 5, 30)
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.Group != -1 || len(r.Messages) != 1 || r.PromptWords() != 40 || r.MaxTokens != 3 {
			t.Fatalf("%+v", r)
		}
		first := strings.Fields(r.Messages[0].Content)[0] + strings.Fields(r.Messages[0].Content)[1]
		if seen[first] {
			t.Fatalf("two prompts start with %q", first)
		}
		seen[first] = true
	}
}

func TestGenerateTruncates(t *testing.T) {
	reqs, err := testShared.Generate(1, 6)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := testShared.Requests(1)
	if len(reqs) != 6 || reqs[5].Messages[1] != all[5].Messages[1] {
		t.Fatalf("Generate(n=6) gave %d requests or not the first six", len(reqs))
	}
	for _, s := range []Spec{testShared, testMulti, testRandom, testMultiNoSystem} {
		if all, _ := s.Requests(1); s.Len() != len(all) {
			t.Fatalf("%s: Len %d, %d requests", s.Name, s.Len(), len(all))
		}
		// Any prefix of a multi-turn workload is a valid dispatcher input.
		for n := 1; n <= s.Len(); n += 5 {
			reqs, _ := s.Generate(1, n)
			if _, err := NewDispatcher(reqs, &fakeClock{}); err != nil {
				t.Fatalf("%s first %d: %v", s.Name, n, err)
			}
		}
	}
	if (Spec{Name: "bad"}).Len() != 0 {
		t.Fatal("an invalid spec has a length")
	}
}

// TestArrivalRate checks the Poisson statistics: for a seed the result is
// fixed, so the bounds (several standard errors wide) cannot flake.
func TestArrivalRate(t *testing.T) {
	const n, rate = 20000, 50.0
	at, err := Arrivals(n, rate, 11)
	if err != nil {
		t.Fatal(err)
	}
	var sum, sumSq float64
	prev := time.Duration(0)
	for _, a := range at {
		g := (a - prev).Seconds()
		sum += g
		sumSq += g * g
		prev = a
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	// Mean gap 1/rate = 20 ms with standard error 20 ms/√n = 0.14 ms.
	if math.Abs(mean-1/rate) > 0.001 {
		t.Fatalf("mean gap %.5f s, want %.5f", mean, 1/rate)
	}
	// An exponential distribution has coefficient of variation 1.
	if cv := sd / mean; math.Abs(cv-1) > 0.05 {
		t.Fatalf("coefficient of variation %.3f, want 1", cv)
	}
	// Counts per 1 s window: Poisson with mean and variance 50.
	counts := make([]float64, int(at[n-1].Seconds()))
	for _, a := range at {
		if w := int(a.Seconds()); w < len(counts) {
			counts[w]++
		}
	}
	var cm, cv float64
	for _, c := range counts {
		cm += c
	}
	cm /= float64(len(counts))
	for _, c := range counts {
		cv += (c - cm) * (c - cm)
	}
	cv /= float64(len(counts) - 1)
	if math.Abs(cm-rate) > 1.5 || cv/cm < 0.8 || cv/cm > 1.2 {
		t.Fatalf("per-second counts: mean %.2f variance %.2f, want both about %v", cm, cv, rate)
	}
}

func TestRejects(t *testing.T) {
	f := func(s Spec, want string) {
		t.Helper()
		if _, err := s.Requests(1); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: %v, want an error containing %q", s, err, want)
		}
	}
	f(Spec{Name: "none"}, "exactly one")
	f(Spec{Name: "two", Random: testRandom.Random, MultiTurn: testMulti.MultiTurn}, "2 are")
	f(Spec{Name: "x", SharedPrefix: &SharedPrefix{Groups: 0, PromptsPerGroup: 1, SystemLen: 1, QuestionLen: 1, OutputLen: 1}}, "SharedPrefix.Groups is 0")
	f(Spec{Name: "x", MultiTurn: &MultiTurn{Sessions: 1, Turns: -1, SystemLen: 1, UserLen: 1, OutputLen: 1}}, "MultiTurn.Turns is -1")
	f(Spec{Name: "x", MultiTurn: &MultiTurn{Sessions: 1, Turns: 1, SystemLen: -1, UserLen: 1, OutputLen: 1}}, "MultiTurn.SystemLen is -1, must be >= 0")
	f(Spec{Name: "x", Random: &Random{Requests: 1, PromptLen: 1}}, "Random.OutputLen is 0")
	for _, r := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := Arrivals(3, r, 1); err == nil || !strings.Contains(err.Error(), "rate is") {
			t.Fatalf("Arrivals(rate %v): %v", r, err)
		}
	}
}
