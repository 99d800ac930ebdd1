package main

import (
	"fmt"
	"strings"
)

// column is one column of a results table: its header, whether its cells
// are right-aligned (numbers) and how a row fills it.
type column struct {
	head  string
	right bool
	cell  func(r row) string
}

// renderTable renders rows as a Markdown table with the columns cols.
func renderTable(cols []column, rows []row) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString("| " + c.head + " ")
	}
	b.WriteString("|\n")
	for _, c := range cols {
		if c.right {
			b.WriteString("|---:")
		} else {
			b.WriteString("|---")
		}
	}
	b.WriteString("|\n")
	for _, r := range rows {
		for _, c := range cols {
			b.WriteString("| " + c.cell(r) + " ")
		}
		b.WriteString("|\n")
	}
	return b.String()
}

// The columns both tables share.
var (
	colContender = column{"contender", false, func(r row) string { return r.Contender }}
	colConns     = column{"conns", true, func(r row) string { return fmt.Sprint(r.Conns) }}
	colRPS       = column{"req/s median (min–max)", true, func(r row) string {
		return kfmt(r.RPS.Median) + " (" + kfmt(r.RPS.Min) + "–" + kfmt(r.RPS.Max) + ")"
	}}
	colBusy   = column{"CPU busy: process / its core", true, busyCell}
	colErrors = column{"errors", true, errCell}
)

// ratioColumn is the column of a row's req/s (cpu false) or CPU per
// request (cpu true) over the reference contender ref's.
func ratioColumn(head, ref string, cpu bool) column {
	return column{head, true, func(r row) string { return ratioCell(r, ref, cpu) }}
}

// proxyColumns are the main table's: throughput, latency and CPU with
// ratios against nginx and HAProxy.
var proxyColumns = []column{
	colContender, colConns, colRPS,
	{"p50 ms", true, func(r row) string { return fmt.Sprintf("%.3f", r.P50.Median) }},
	{"p99 ms median (min–max)", true, func(r row) string {
		return fmt.Sprintf("%.3f (%.3f–%.3f)", r.P99.Median, r.P99.Min, r.P99.Max)
	}},
	{"CPU µs/req", true, func(r row) string { return fmt.Sprintf("%.1f", r.CPU.Median) }},
	colBusy,
	ratioColumn("req/s ÷ nginx", kindNginx, false), ratioColumn("req/s ÷ HAProxy", kindHAProxy, false),
	ratioColumn("CPU/req ÷ nginx", kindNginx, true), ratioColumn("CPU/req ÷ HAProxy", kindHAProxy, true),
	colErrors,
}

// pluginColumns are the plugin-chain table's: costs relative to Sluice
// without plugins in the same round.
var pluginColumns = []column{
	colContender, colConns, colRPS,
	{"p99 ms", true, func(r row) string { return fmt.Sprintf("%.3f", r.P99.Median) }},
	{"CPU µs/req median (min–max)", true, func(r row) string {
		return fmt.Sprintf("%.1f (%.1f–%.1f)", r.CPU.Median, r.CPU.Min, r.CPU.Max)
	}},
	colBusy,
	ratioColumn("req/s ÷ no plugins", kindSluice, false), ratioColumn("CPU/req ÷ no plugins", kindSluice, true),
	colErrors,
}
