package proxy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// TestOpenAISDK drives the official openai-go client through Sluice
// against proxytest, streaming and not.
func TestOpenAISDK(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 5})
	p := startProxy(t, baseConfig(up.URL), Options{})
	client := openai.NewClient(option.WithBaseURL(p.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "proxytest-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}

	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || !strings.HasPrefix(cc.Choices[0].Message.Content, "tok0") || cc.Usage.CompletionTokens != 5 {
		t.Fatalf("completion: %+v", cc)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 5 || !strings.HasPrefix(acc.Choices[0].Message.Content, "tok0 tok1") || acc.Usage.CompletionTokens != 5 {
		t.Fatalf("stream: %d chunks, %+v", chunks, acc.ChatCompletion)
	}
	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) == 0 {
		t.Fatalf("models: %v %+v", err, models)
	}
	checkSlotsFree(t, p.Router())
}

// TestOpenAISDKOverload checks that the SDK sees Sluice's 429 as an API
// error with the overloaded code, for a streaming request too.
func TestOpenAISDKOverload(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p := startProxy(t, baseConfig(up.URL).WithMaxConcurrentRequests(1), Options{})
	var g Guard // hold the only slot
	if err := p.Router().acquireInto(&g); err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	client := openai.NewClient(option.WithBaseURL(p.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	for stream.Next() {
		t.Fatal("got a chunk from an overloaded proxy")
	}
	var apiErr *openai.Error
	if err := stream.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "overloaded" {
		t.Fatalf("stream error = %v", err)
	}
}
