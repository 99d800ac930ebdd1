package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"math"
	"strconv"
	"time"
)

// limits are one key's per-minute limits; 0 means unlimited.
type limits struct {
	rpm, tpm int64
}

// bucket is the state of one key's two token buckets, stored in shared
// data. Levels are what is available now; the token level may go negative
// when a response used more tokens than were charged up front (a debt the
// refill pays back before the next request is admitted). Both buckets hold
// at most one minute's limit and refill linearly over a minute, as
// OpenAI's limits do.
type bucket struct {
	at  int64   // Unix ns of the last update
	req float64 // requests available
	tok float64 // LLM tokens available
}

const minute = float64(time.Minute)

// newBucket is a full bucket.
func newBucket(now int64, l limits) bucket {
	return bucket{at: now, req: float64(l.rpm), tok: float64(l.tpm)}
}

// refill returns b refilled up to now and capped at the limits (which may
// have shrunk since the bucket was stored). A clock that went backwards
// refills nothing.
func (b bucket) refill(now int64, l limits) bucket {
	if now > b.at {
		dt := float64(now - b.at)
		b.req += dt * float64(l.rpm) / minute
		b.tok += dt * float64(l.tpm) / minute
		b.at = now
	}
	b.req = math.Min(float64(l.rpm), b.req)
	b.tok = math.Min(float64(l.tpm), b.tok)
	return b
}

// decision is the outcome of an admission and what the rate-limit
// headers report.
type decision struct {
	allowed  bool
	tooLarge bool   // the request needs more tokens than the limit: never admitted
	by       string // when refused: "requests" or "tokens"
	wait     time.Duration
	cost     int64 // tokens requested
	st       status
}

// status is what the x-ratelimit-* headers report.
type status struct {
	remReq, remTok     int64
	resetReq, resetTok time.Duration // until the bucket is full again
}

// admit refills b and, if one request and cost tokens are available,
// takes them. Unlimited dimensions (0) never refuse; a request with cost
// 0 is not checked against the token bucket (it uses no tokens, so a
// token debt does not block it).
func (b bucket) admit(now int64, l limits, cost int64) (bucket, decision) {
	b = b.refill(now, l)
	d := decision{cost: cost}
	var reqWait, tokWait float64
	if l.rpm > 0 && b.req < 1 {
		reqWait = (1 - b.req) * minute / float64(l.rpm)
	}
	if l.tpm > 0 && cost > 0 {
		if cost > l.tpm {
			d.tooLarge = true
		} else if float64(cost) > b.tok {
			tokWait = (float64(cost) - b.tok) * minute / float64(l.tpm)
		}
	}
	switch {
	case d.tooLarge:
		d.by = "tokens"
	case reqWait > 0 || tokWait > 0:
		d.by = "requests"
		if tokWait > reqWait {
			d.by = "tokens"
		}
		d.wait = ceilDuration(math.Max(reqWait, tokWait), time.Millisecond)
	default:
		d.allowed = true
		if l.rpm > 0 {
			b.req--
		}
		if l.tpm > 0 {
			b.tok -= float64(cost)
		}
	}
	d.st = b.status(l)
	return b, d
}

// charge refills b and takes delta more tokens (a negative delta gives
// tokens back, up to the limit).
func (b bucket) charge(now int64, l limits, delta int64) bucket {
	b = b.refill(now, l)
	if l.tpm > 0 {
		b.tok = math.Min(float64(l.tpm), b.tok-float64(delta))
	}
	return b
}

// status reports the remaining amounts and the time until each bucket is
// full.
func (b bucket) status(l limits) status {
	var s status
	if l.rpm > 0 {
		s.remReq = int64(math.Max(0, math.Floor(b.req)))
		s.resetReq = ceilDuration((float64(l.rpm)-b.req)*minute/float64(l.rpm), time.Millisecond)
	}
	if l.tpm > 0 {
		s.remTok = int64(math.Max(0, math.Floor(b.tok)))
		s.resetTok = ceilDuration((float64(l.tpm)-b.tok)*minute/float64(l.tpm), time.Millisecond)
	}
	return s
}

// ceilDuration converts ns to a Duration rounded up to a multiple of unit
// (0 for ns <= 0).
func ceilDuration(ns float64, unit time.Duration) time.Duration {
	if ns <= 0 || math.IsNaN(ns) {
		return 0
	}
	if ns > float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2 / unit * unit
	}
	return time.Duration(math.Ceil(ns/float64(unit))) * unit
}

// bucketSize is the encoded size: a version byte, the update time and the
// two levels.
const bucketSize = 1 + 8 + 8 + 8

const bucketVersion = 1

// encode returns the shared-data value of b.
func (b bucket) encode() []byte {
	out := make([]byte, bucketSize)
	out[0] = bucketVersion
	binary.LittleEndian.PutUint64(out[1:], uint64(b.at))
	binary.LittleEndian.PutUint64(out[9:], math.Float64bits(b.req))
	binary.LittleEndian.PutUint64(out[17:], math.Float64bits(b.tok))
	return out
}

// decodeBucket parses a shared-data value; ok is false for anything
// encode did not produce (then the caller starts a full bucket).
func decodeBucket(data []byte) (bucket, bool) {
	if len(data) != bucketSize || data[0] != bucketVersion {
		return bucket{}, false
	}
	b := bucket{
		at:  int64(binary.LittleEndian.Uint64(data[1:])),
		req: math.Float64frombits(binary.LittleEndian.Uint64(data[9:])),
		tok: math.Float64frombits(binary.LittleEndian.Uint64(data[17:])),
	}
	for _, v := range []float64{b.req, b.tok} {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1<<60 {
			return bucket{}, false
		}
	}
	return b, true
}

// formatReset formats a reset time as OpenAI does in
// x-ratelimit-reset-*: "20ms" below a second, else Go duration notation
// with at most two decimals ("1s", "8.64s", "6m0s"), rounded up.
func formatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if ms := ceilDuration(float64(d), time.Millisecond); ms < time.Second {
		return strconv.FormatInt(int64(ms/time.Millisecond), 10) + "ms"
	}
	return ceilDuration(float64(d), 10*time.Millisecond).String()
}

// rateHeaders are the x-ratelimit-* headers for l and st; an unlimited
// dimension has none.
func rateHeaders(l limits, st status) [][2]string {
	h := make([][2]string, 0, 6)
	if l.rpm > 0 {
		h = append(h,
			[2]string{"x-ratelimit-limit-requests", strconv.FormatInt(l.rpm, 10)},
			[2]string{"x-ratelimit-remaining-requests", strconv.FormatInt(st.remReq, 10)},
			[2]string{"x-ratelimit-reset-requests", formatReset(st.resetReq)})
	}
	if l.tpm > 0 {
		h = append(h,
			[2]string{"x-ratelimit-limit-tokens", strconv.FormatInt(l.tpm, 10)},
			[2]string{"x-ratelimit-remaining-tokens", strconv.FormatInt(st.remTok, 10)},
			[2]string{"x-ratelimit-reset-tokens", formatReset(st.resetTok)})
	}
	return h
}

// rejection is the 429 local reply for a refused decision: OpenAI's error
// shape (type "requests" or "tokens", code "rate_limit_exceeded"),
// Retry-After in whole seconds and retry-after-ms (which the OpenAI SDKs
// read first), and the rate-limit headers. A request that can never fit
// gets x-should-retry: false instead of a retry time.
func rejection(l limits, d decision) (headers [][2]string, body []byte) {
	headers = [][2]string{{"content-type", "application/json"}}
	var msg string
	if d.tooLarge {
		headers = append(headers, [2]string{"x-should-retry", "false"})
		msg = "Request too large for tokens per min (TPM): Limit " + strconv.FormatInt(l.tpm, 10) +
			", Requested " + strconv.FormatInt(d.cost, 10) + ". Lower max_tokens (or max_completion_tokens) and try again."
	} else {
		secs := int64(math.Ceil(d.wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		headers = append(headers,
			[2]string{"retry-after", strconv.FormatInt(secs, 10)},
			[2]string{"retry-after-ms", strconv.FormatInt(max(1, d.wait.Milliseconds()), 10)})
		if d.by == "requests" {
			msg = "Rate limit reached for requests per min (RPM): Limit " + strconv.FormatInt(l.rpm, 10) +
				", Requested 1. Please try again in " + formatReset(d.wait) + "."
		} else {
			msg = "Rate limit reached for tokens per min (TPM): Limit " + strconv.FormatInt(l.tpm, 10) +
				", Remaining " + strconv.FormatInt(d.st.remTok, 10) + ", Requested " + strconv.FormatInt(d.cost, 10) +
				". Please try again in " + formatReset(d.wait) + "."
		}
	}
	headers = append(headers, rateHeaders(l, d.st)...)
	return headers, openai.ErrorBody(msg, d.by, "", "rate_limit_exceeded")
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
