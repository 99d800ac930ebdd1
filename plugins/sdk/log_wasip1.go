//go:build wasip1

package sdk

import (
	"fmt"
	"time"
)

// logMessage sends msg to the host at level. Logging never fails loudly: a
// host that rejects the call has nowhere better to report it.
func logMessage(level LogLevel, msg string) {
	proxyLog(uint32(level), stringPtr(msg), uint32(len(msg)))
}

// Log sends msg to the host's log at level and reports the host's status.
func Log(level LogLevel, msg string) error {
	return hostError("proxy_log", proxyLog(uint32(level), stringPtr(msg), uint32(len(msg))))
}

// LogTrace logs msg at trace level.
func LogTrace(msg string) { logMessage(LogLevelTrace, msg) }

// LogDebug logs msg at debug level.
func LogDebug(msg string) { logMessage(LogLevelDebug, msg) }

// LogInfo logs msg at info level.
func LogInfo(msg string) { logMessage(LogLevelInfo, msg) }

// LogWarn logs msg at warn level.
func LogWarn(msg string) { logMessage(LogLevelWarn, msg) }

// LogError logs msg at error level.
func LogError(msg string) { logMessage(LogLevelError, msg) }

// LogCritical logs msg at critical level.
func LogCritical(msg string) { logMessage(LogLevelCritical, msg) }

// LogTracef formats with fmt.Sprintf and logs at trace level. Nothing is
// formatted when the host would drop the line (see LogEnabled).
func LogTracef(format string, args ...any) { logf(LogLevelTrace, format, args) }

// LogDebugf formats with fmt.Sprintf and logs at debug level, formatting
// nothing when the host would drop the line.
func LogDebugf(format string, args ...any) { logf(LogLevelDebug, format, args) }

// LogInfof formats with fmt.Sprintf and logs at info level, formatting
// nothing when the host would drop the line.
func LogInfof(format string, args ...any) { logf(LogLevelInfo, format, args) }

// LogWarnf formats with fmt.Sprintf and logs at warn level, formatting
// nothing when the host would drop the line.
func LogWarnf(format string, args ...any) { logf(LogLevelWarn, format, args) }

// LogErrorf formats with fmt.Sprintf and logs at error level, formatting
// nothing when the host would drop the line.
func LogErrorf(format string, args ...any) { logf(LogLevelError, format, args) }

// LogCriticalf formats with fmt.Sprintf and logs at critical level,
// formatting nothing when the host would drop the line.
func LogCriticalf(format string, args ...any) { logf(LogLevelCritical, format, args) }

// logf formats and logs only when the host keeps lines at level: a line
// the host drops costs one proxy_get_log_level call instead of the
// formatting (which dominates a guest that logs per header).
func logf(level LogLevel, format string, args []any) {
	if !LogEnabled(level) {
		return
	}
	logMessage(level, fmt.Sprintf(format, args...))
}

// LogEnabled reports whether the host keeps log lines at level. The host's
// level is asked once per callback (hosts may change it at run time, never
// in the middle of a callback), so a callback that logs many dropped lines
// makes one host call. A host that does not answer is assumed to keep
// everything.
func LogEnabled(level LogLevel) bool {
	if !hostLogLevel.known {
		var l uint32
		if proxyGetLogLevel(&l) != 0 {
			l = uint32(LogLevelTrace)
		}
		hostLogLevel.level, hostLogLevel.known = l, true
	}
	return uint32(level) >= hostLogLevel.level
}

// hostLogLevel caches the host's log level for the current callback.
var hostLogLevel struct {
	level uint32
	known bool
}

// enterCallback runs first in every exported callback: what the SDK
// cached from the host for one callback is stale in the next.
func enterCallback() { hostLogLevel.known = false }

// GetLogLevel returns the host's current log level, so a plugin can skip
// building messages the host would drop.
func GetLogLevel() (LogLevel, error) {
	var level uint32
	if err := hostError("proxy_get_log_level", proxyGetLogLevel(&level)); err != nil {
		return 0, err
	}
	return LogLevel(level), nil
}

// GetCurrentTime returns the host's clock. Hosts may freeze it for the
// duration of a callback.
func GetCurrentTime() (time.Time, error) {
	var ns uint64
	if err := hostError("proxy_get_current_time_nanoseconds", proxyGetCurrentTimeNanoseconds(&ns)); err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, int64(ns)), nil
}

// GetCurrentTimeNanos is GetCurrentTime as Unix nanoseconds: a Go guest
// compares and subtracts them for a fraction of what time.Time costs it.
func GetCurrentTimeNanos() (int64, error) {
	var ns uint64
	if err := hostError("proxy_get_current_time_nanoseconds", proxyGetCurrentTimeNanoseconds(&ns)); err != nil {
		return 0, err
	}
	return int64(ns), nil
}

// GetVMConfiguration returns the VM configuration. Only valid during
// VMContext.OnVMStart.
func GetVMConfiguration() ([]byte, error) {
	return getBuffer(BufferVMConfiguration, 0, maxBufferSize)
}

// GetPluginConfiguration returns the plugin configuration. Only valid during
// PluginContext.OnPluginStart.
func GetPluginConfiguration() ([]byte, error) {
	return getBuffer(BufferPluginConfiguration, 0, maxBufferSize)
}

// SetTickPeriodMilliSeconds asks the host to call PluginContext.OnTick every
// period milliseconds on the calling plugin context; 0 stops the ticks.
func SetTickPeriodMilliSeconds(period uint32) error {
	return hostError("proxy_set_tick_period_milliseconds", proxySetTickPeriodMilliseconds(period))
}

// SetEffectiveContext makes contextID the context later host calls act on,
// e.g. to resume an HTTP request from a callout's callback.
func SetEffectiveContext(contextID uint32) error {
	return hostError("proxy_set_effective_context", proxySetEffectiveContext(contextID))
}

// Done tells the host that a context which returned false from
// PluginContext.OnPluginDone has finished its work.
func Done() error {
	return hostError("proxy_done", proxyDone())
}
