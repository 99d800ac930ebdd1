package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// upstreamCodes holds sluice_upstream_requests_total{upstream,code}
// counters of one pool. A counter is created the first time its code is
// seen (status codes are few), then found with one atomic load.
type upstreamCodes struct {
	set   *metrics.Set
	name  string
	codes [600]atomic.Pointer[metrics.Counter]
}

func newUpstreamCodes(set *metrics.Set, pool string) *upstreamCodes {
	return &upstreamCodes{set: set, name: pool}
}

// inc counts one upstream answer with status code (0 = no answer: a
// connection error or timeout).
func (u *upstreamCodes) inc(code int) {
	if code < 0 || code >= len(u.codes) {
		code = 0
	}
	c := u.codes[code].Load()
	if c == nil {
		c = u.set.GetOrCreateCounter(`sluice_upstream_requests_total{upstream="` + escapeLabel(u.name) +
			`",code="` + strconv.Itoa(code) + `"}`)
		u.codes[code].Store(c)
	}
	c.Inc()
}

// escapeLabel escapes a Prometheus label value.
func escapeLabel(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
