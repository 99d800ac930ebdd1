package upstream

import (
	"bytes"
	"errors"
	"math"
	"strconv"
)

// engineLoad is what an inference engine's Prometheus metrics say about
// its load. Fields whose Has… flag is false were not in the scrape.
type engineLoad struct {
	// Waiting is the number of queued requests, summed over label sets.
	Waiting float64
	// Running is the number of requests in the running batch, summed over
	// label sets.
	Running float64
	// KVCacheUsage is the KV-cache (SGLang: token pool) usage, 0 to 1: the
	// largest over label sets, since a sum of ratios means nothing.
	KVCacheUsage float64

	HasWaiting, HasRunning, HasKVCache bool
}

// engineSignal is what a metric family contributes to engineLoad.
type engineSignal uint8

const (
	sigNone engineSignal = iota
	sigWaiting
	sigRunning
	sigKVCache
)

// engineSignals maps the metric names of vLLM, SGLang, TGI and
// TensorRT-LLM to what they measure. vLLM renamed
// gpu_cache_usage_perc to kv_cache_usage_perc (v0.10); both are read.
var engineSignals = map[string]engineSignal{
	"vllm:num_requests_waiting":   sigWaiting,
	"vllm:num_requests_running":   sigRunning,
	"vllm:kv_cache_usage_perc":    sigKVCache,
	"vllm:gpu_cache_usage_perc":   sigKVCache,
	"sglang:num_queue_reqs":       sigWaiting,
	"sglang:num_running_reqs":     sigRunning,
	"sglang:token_usage":          sigKVCache,
	"tgi_queue_size":              sigWaiting,
	"tgi_batch_current_size":      sigRunning,
	"trtllm_num_requests_waiting": sigWaiting,
	"trtllm_num_requests_running": sigRunning,
	"trtllm_kv_cache_utilization": sigKVCache,
}

// parseEngineMetrics reads the load signals from a Prometheus text
// exposition (format 0.0.4; OpenMetrics lines parse too). Only samples of
// the metrics in engineSignals are parsed in full; other lines are
// skipped after their name, so an exposition feature Sluice does not know
// cannot fail a scrape. A malformed sample of a known metric is an error
// naming its line. NaN, infinite and negative values are ignored.
func parseEngineMetrics(b []byte) (engineLoad, error) {
	var load engineLoad
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		l = trimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		n := metricNameLen(l)
		if n == 0 {
			continue // not a sample line; nothing Sluice reads
		}
		sig := engineSignals[string(l[:n])]
		if sig == sigNone {
			continue
		}
		v, err := sampleValue(l[n:])
		if err != nil {
			return engineLoad{}, errors.New("proxy: metrics line " + strconv.Itoa(line) + ": " +
				string(l[:n]) + ": " + err.Error())
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			continue
		}
		switch sig {
		case sigWaiting:
			load.Waiting += v
			load.HasWaiting = true
		case sigRunning:
			load.Running += v
			load.HasRunning = true
		case sigKVCache:
			load.KVCacheUsage = max(load.KVCacheUsage, min(v, 1))
			load.HasKVCache = true
		}
	}
	return load, nil
}

// metricNameLen returns the length of the metric name l starts with
// ([a-zA-Z_:][a-zA-Z0-9_:]*), or 0.
func metricNameLen(l []byte) int {
	for i, c := range l {
		switch {
		case c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return i
		}
	}
	return len(l)
}

// sampleValue parses what follows a metric name: optional {labels},
// blanks, the value, and anything after it (timestamp, exemplar), which
// is ignored.
func sampleValue(l []byte) (float64, error) {
	if len(l) > 0 && l[0] == '{' {
		end, err := skipLabels(l)
		if err != nil {
			return 0, err
		}
		l = l[end:]
	}
	if len(l) == 0 || (l[0] != ' ' && l[0] != '\t') {
		return 0, errors.New("want a blank and a value after the name and labels")
	}
	l = trimSpace(l)
	end := 0
	for end < len(l) && l[end] != ' ' && l[end] != '\t' {
		end++
	}
	v, err := strconv.ParseFloat(string(l[:end]), 64)
	if err != nil {
		return 0, errors.New("malformed value " + strconv.Quote(string(l[:end])))
	}
	return v, nil
}

// skipLabels returns the index just past the label set that l starts with
// ('{' … '}'), honouring quoted values and their escapes.
func skipLabels(l []byte) (int, error) {
	inQuote := false
	for i := 1; i < len(l); i++ {
		c := l[i]
		switch {
		case inQuote && c == '\\':
			i++ // the escaped byte
		case c == '"':
			inQuote = !inQuote
		case c == '}' && !inQuote:
			return i + 1, nil
		}
	}
	return 0, errors.New("unterminated label set")
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
