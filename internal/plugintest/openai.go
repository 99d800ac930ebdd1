package plugintest

import "github.com/sluice-proxy/sluice/internal/testsync"

// OpenAIError is the OpenAI error envelope plugins and the proxy send in
// local replies (testsync.OpenAIError, which package proxy's tests use
// too).
type OpenAIError = testsync.OpenAIError
