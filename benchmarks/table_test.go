package main

import "testing"

// tableRows are the rows of two rounds of sluice, nginx and a plugin chain
// against sluice, one of them with empty runs.
func tableRows() []row {
	var s []sample
	for r, v := range [][3]float64{{100, 150, 90}, {300, 330, 280}} {
		s = append(s, mkSample("t", kindNginx, 50, r, v[0], 10), mkSample("t", kindSluice, 50, r, v[1], 20),
			mkSample("t", "sluice-chain", 50, r, v[2], 25))
	}
	rows := summarize(s, "t", []string{kindNginx, kindSluice, "sluice-chain"}, []int{50}, []string{kindNginx, kindHAProxy, kindSluice})
	rows[2].Errors, rows[2].Empty = 3, 1
	return rows
}

// TestTablesPinned pins the Markdown of the proxy and plugin tables
// to the letter: RESULTS.md files are compared across commits.
func TestTablesPinned(t *testing.T) {
	rows := tableRows()
	const wantProxy = `| contender | conns | req/s median (min–max) | p50 ms | p99 ms median (min–max) | CPU µs/req | CPU busy: process / its core | req/s ÷ nginx | req/s ÷ HAProxy | CPU/req ÷ nginx | CPU/req ÷ HAProxy | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| nginx | 50 | 200 (100–300) | 1.000 | 1.500 (1.000–2.000) | 10.0 | 97 % / 99 % | 1.00 (1.00–1.00) | – | 1.00 (1.00–1.00) | – | 0 |
| sluice | 50 | 240 (150–330) | 1.000 | 1.500 (1.000–2.000) | 20.0 | 97 % / 99 % | 1.30 (1.10–1.50) | – | 2.00 (2.00–2.00) | – | 0 |
| sluice-chain | 50 | 185 (90–280) | 1.000 | 1.500 (1.000–2.000) | 25.0 | 97 % / 99 % | 0.92 (0.90–0.93) | – | 2.50 (2.50–2.50) | – | 3, 1 empty run(s) |
`
	const wantPlugin = `| contender | conns | req/s median (min–max) | p99 ms | CPU µs/req median (min–max) | CPU busy: process / its core | req/s ÷ no plugins | CPU/req ÷ no plugins | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| nginx | 50 | 200 (100–300) | 1.500 | 10.0 (10.0–10.0) | 97 % / 99 % | 0.79 (0.67–0.91) | 0.50 (0.50–0.50) | 0 |
| sluice | 50 | 240 (150–330) | 1.500 | 20.0 (20.0–20.0) | 97 % / 99 % | 1.00 (1.00–1.00) | 1.00 (1.00–1.00) | 0 |
| sluice-chain | 50 | 185 (90–280) | 1.500 | 25.0 (25.0–25.0) | 97 % / 99 % | 0.72 (0.60–0.85) | 1.25 (1.25–1.25) | 3, 1 empty run(s) |
`
	if got := proxyTable(rows); got != wantProxy {
		t.Errorf("proxy table:\n%s\nwant\n%s", got, wantProxy)
	}
	if got := pluginTable(rows); got != wantPlugin {
		t.Errorf("plugin table:\n%s\nwant\n%s", got, wantPlugin)
	}
}
