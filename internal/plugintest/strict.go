package plugintest

import (
	"fmt"
	"os"
	"testing"
)

// StrictEnv names the environment variable that turns skips for a missing
// toolchain into failures when set to "1".
const StrictEnv = "SLUICE_TEST_STRICT"

// Strict reports whether SLUICE_TEST_STRICT=1 is set. The default (unset or
// any other value) is lenient: tests skip when a toolchain is missing.
func Strict() bool {
	return os.Getenv(StrictEnv) == "1"
}

// SkipOrFail stops tb with the formatted message: it skips the test, or fails
// it when Strict reports true. Like tb.Skip and tb.Fatal it must be called
// from the goroutine running the test.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		tb.Fatalf("plugintest: %s (failing because %s=1)", msg, StrictEnv)
	}
	tb.Skipf("plugintest: SKIP: %s (set %s=1 to fail instead)", msg, StrictEnv)
}
