package plugintest

import "github.com/sluice-proxy/sluice/internal/testsync"

// LogBuffer is a log sink for tests whose contents can be read while
// plugins and servers still write to it (testsync.LogBuffer).
type LogBuffer = testsync.LogBuffer
