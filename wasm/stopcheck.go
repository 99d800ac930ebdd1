package wasm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Stop checks: how a call that overruns its budget is stopped, and how a
// long call stays preemptible, without wazero's WithCloseOnContextDone
// (see RATIONALE.md, "Deadlines without a goroutine per call").
//
// addStopChecks rewrites a guest module before it is compiled:
//
//   - it imports the host function sluice.yield, () -> (), as the last
//     function import; the module's own functions move up by one index,
//     and every reference to them (call, return_call, ref.func, exports,
//     element segments, global initialisers, the name section) is
//     renumbered;
//   - it appends a mutable i32 global, $fuel, initially yieldEvery;
//   - at the top of every loop body, and at the entry of every function
//     that contains a call (call, call_indirect, return_call,
//     return_call_indirect), it inserts a countdown: $fuel is
//     decremented, and when it reaches 0 it is refilled and the guest
//     calls sluice.yield. The code is stack-neutral, so it is valid in a
//     loop of any block type and before a function's first instruction;
//   - it removes the start section and exports the start function as
//     startExport instead, so that the host runs it under a deadline
//     after instantiation (wazero runs a start section inside
//     InstantiateModule, before the host can bound it);
//   - it drops DWARF custom sections (".debug_*"): the inserted code moves
//     every instruction, and stale line tables would point traps at the
//     wrong source lines.
//
// sluice.yield (hostYield) runs on the calling goroutine, in Go: it is
// where the deadline stops a call that used its budget (it panics, and
// wazero returns the panic as the call's error) and where the deadline
// starts counting the thread's CPU time once the budget has passed in wall
// time. Leaving native code periodically also keeps the process healthy:
// native code cannot be preempted, so a guest that never left it would
// hold its P, stall every stop-the-world (GC) until it returned and, with
// GOMAXPROCS=1, starve the very timer that is to stop it. In Go code the
// scheduler preempts it. WithCloseOnContextDone leaves native code at every
// loop iteration for the same reasons; the countdown does it once per
// yieldEvery iterations.
//
// Between two countdown steps a guest runs only code that neither loops
// nor calls a function that calls: forward branches, leaf functions
// (bounded by their size) and returns. So every long call, a loop, a
// recursion (direct, mutual or through call_indirect, however it fans
// out) or a tail-call cycle, reaches sluice.yield within yieldEvery steps;
// a deep recursion that outruns the budget before its stack does is
// stopped there too, and one that does not ends in wazero's stack
// overflow trap. Leaf functions are left alone: they cannot extend a call
// on their own, and skipping them keeps small hot helpers free of the
// check.
//
// Only the instructions of WebAssembly 2.0 (the features the host's
// runtime enables) are decoded; a module using others fails with an error
// naming the opcode (wazero would refuse it anyway). A module whose vector
// counts exceed the bytes that hold them, or with a function declaring
// more than maxLocals locals, is refused too (see scanModule). The
// function is pure and safe for concurrent use; the result does not alias
// bin.
func addStopChecks(bin []byte) ([]byte, error) {
	out, err := rewriteModule(bin)
	if err != nil && !errors.Is(err, errUnsupported) && !errors.Is(err, errLimit) && !errors.Is(err, errNotWasm) {
		err = fmt.Errorf("%w: %w", errMalformed, err)
	}
	return out, err
}

// Classes of addStopChecks errors.
var (
	errNotWasm = errors.New("not a WebAssembly binary module (bad magic number or version)")
	// errMalformed: the module does not parse (a count larger than its
	// section, a truncated instruction...): the compiler would refuse it.
	errMalformed = errors.New("malformed module")
	// errUnsupported: an instruction or encoding beyond WebAssembly 2.0,
	// or a name the host reserves; the module parses up to it.
	errUnsupported = errors.New("unsupported")
	// errLimit: valid, but over a limit the host sets to protect itself.
	errLimit = errors.New("over the host's limit")
)

// maxLocals bounds the locals of one function, as browsers do (V8 and
// SpiderMonkey: 50000). wazero allocates the declared count before it
// validates the body, so a 6-byte declaration of 2^32 locals would cost
// 4 GiB.
const maxLocals = 50000

// rewriteModule is addStopChecks without the error classification.
func rewriteModule(bin []byte) ([]byte, error) {
	m, err := scanModule(bin)
	if err != nil {
		return nil, err
	}
	for _, name := range m.exports {
		if name == startExport {
			return nil, fmt.Errorf("%w: exports %q, a name the host reserves", errUnsupported, name)
		}
	}
	if m.types == maxIndex || m.imports == maxIndex || m.globals == maxIndex || uint64(m.importedFuncs)+uint64(m.funcs) >= maxIndex {
		return nil, fmt.Errorf("%w: too many types, globals or functions", errLimit)
	}
	w := &rewriter{
		yield: m.importedFuncs,
		fuel:  m.importedGlobals + m.globals,
	}
	w.check = w.stopCheck()
	out := make([]byte, 0, len(bin)+len(bin)/8+64)
	out = append(out, bin[:8]...)
	// Sections the rewrite adds when the module has none, by rank.
	added := []struct {
		id   byte
		done bool
	}{{secType, m.has(secType)}, {secImport, m.has(secImport)}, {secGlobal, m.has(secGlobal)}, {secExport, m.has(secExport)}}
	for _, s := range m.sections {
		if s.id == secCustom {
			switch {
			case strings.HasPrefix(s.name, ".debug_"):
			case s.name == "name":
				if body, ok := w.nameSection(s.body); ok {
					out = appendSection(out, s.id, body)
				}
			default:
				out = appendSection(out, s.id, s.body)
			}
			continue
		}
		for i := range added {
			if a := &added[i]; !a.done && sectionRank(a.id) < sectionRank(s.id) {
				out = appendSection(out, a.id, w.newSection(m, a.id))
				a.done = true
			}
		}
		body := s.body
		switch s.id {
		case secType:
			body = appendU32(nil, m.types+1)
			body = append(body, s.body[s.countLen:]...)
			body = append(body, 0x60, 0x00, 0x00) // () -> ()
		case secImport:
			body = appendU32(nil, m.imports+1)
			body = append(body, s.body[s.countLen:]...)
			body = w.appendYieldImport(body, m.types)
		case secGlobal:
			body, err = w.globalSection(s.body)
		case secExport:
			body, err = w.exportSection(s.body, m)
		case secStart:
			continue // exported as startExport
		case secElement:
			body, err = w.elementSection(s.body)
		case secCode:
			body, err = w.codeSection(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("section id %d: %w", s.id, err)
		}
		out = appendSection(out, s.id, body)
	}
	for _, a := range added {
		if !a.done {
			out = appendSection(out, a.id, w.newSection(m, a.id))
		}
	}
	return out, nil
}

// Names addStopChecks adds. The colon in the export keeps it out of the
// way of names an SDK or a C or Go identifier could produce.
const (
	yieldModule = "sluice"
	yieldName   = "yield"
	startExport = "sluice:start"
)

// yieldEvery is how many loop iterations a guest runs between two calls
// to sluice.yield. A call costs about 0.1 µs (a host-function round trip)
// and a loop iteration at least a nanosecond, so the countdown adds well
// under 0.1 ns per iteration, while a guest in a tight loop still leaves
// native code every few microseconds (at most yieldEvery times its
// longest loop body).
const yieldEvery = 1000

// maxIndex bounds the counts the rewrite increments.
const maxIndex = 1<<32 - 1

// rewriter holds the indices of what addStopChecks adds.
type rewriter struct {
	yield uint32 // function index of sluice.yield
	fuel  uint32 // global index of $fuel
	check []byte // code inserted at the top of every loop body and calling function
	calls bool   // the expression expr last copied contains a call
}

// fn renumbers a function index of the original module.
func (w *rewriter) fn(i uint32) uint32 {
	if i >= w.yield {
		return i + 1
	}
	return i
}

// stopCheck is the code inserted at the top of every loop body and at the
// entry of every function that calls:
//
//	global.get $fuel; i32.const 1; i32.sub; global.set $fuel
//	global.get $fuel; i32.eqz
//	if
//	  i32.const yieldEvery; global.set $fuel
//	  call $sluice.yield
//	end
func (w *rewriter) stopCheck() []byte {
	var c []byte
	c = appendU32(append(c, 0x23), w.fuel)
	c = append(c, 0x41, 0x01, 0x6b)
	c = appendU32(append(c, 0x24), w.fuel)
	c = appendU32(append(c, 0x23), w.fuel)
	c = append(c, 0x45, 0x04, 0x40)
	c = appendS32(append(c, 0x41), yieldEvery)
	c = appendU32(append(c, 0x24), w.fuel)
	c = appendU32(append(c, 0x10), w.yield)
	return append(c, 0x0b)
}

// newSection is the body of a section the module lacks.
func (w *rewriter) newSection(m *moduleScan, id byte) []byte {
	switch id {
	case secType:
		return []byte{1, 0x60, 0x00, 0x00}
	case secImport:
		return w.appendYieldImport([]byte{1}, m.types)
	case secGlobal:
		return w.appendFuel([]byte{1})
	case secExport:
		if !m.hasStart {
			return []byte{0}
		}
		return w.appendStartExport([]byte{1}, m)
	}
	panic(fmt.Sprintf("wasm: newSection(%d)", id))
}

func (w *rewriter) appendYieldImport(b []byte, typeIdx uint32) []byte {
	b = appendName(b, yieldModule)
	b = appendName(b, yieldName)
	return appendU32(append(b, 0x00), typeIdx)
}

func (w *rewriter) appendFuel(b []byte) []byte {
	b = append(b, 0x7f, 0x01, 0x41) // mut i32, i32.const
	b = appendS32(b, yieldEvery)
	return append(b, 0x0b)
}

func (w *rewriter) appendStartExport(b []byte, m *moduleScan) []byte {
	b = appendName(b, startExport)
	return appendU32(append(b, 0x00), w.fn(m.startFunc))
}

// globalSection renumbers ref.func in initialisers and appends $fuel.
func (w *rewriter) globalSection(body []byte) ([]byte, error) {
	r := wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = append(out, r.bytes(2)...) // valtype, mutability
		var err error
		if out, err = w.expr(out, &r, false); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return w.appendFuel(out), nil
}

// exportSection renumbers function exports and adds startExport.
func (w *rewriter) exportSection(body []byte, m *moduleScan) ([]byte, error) {
	r := wasmReader{b: body}
	n := r.u32()
	total := n
	if m.hasStart {
		total++
	}
	out := appendU32(nil, total)
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = appendName(out, string(r.bytes(r.u32())))
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			idx = w.fn(idx)
		}
		out = appendU32(append(out, kind), idx)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if m.hasStart {
		out = w.appendStartExport(out, m)
	}
	return out, nil
}

// elementSection renumbers the functions element segments refer to.
func (w *rewriter) elementSection(body []byte) ([]byte, error) {
	r := wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if flags > 7 && r.err == nil {
			return nil, fmt.Errorf("%w: element segment %d: flags %d", errUnsupported, i, flags)
		}
		out = appendU32(out, flags)
		var err error
		if flags == 2 || flags == 6 { // explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = w.expr(out, &r, false); err != nil {
				return nil, fmt.Errorf("element segment %d: %w", i, err)
			}
		}
		if flags != 0 && flags != 4 { // elemkind or reftype
			out = append(out, r.byte())
		}
		m := r.u32()
		out = appendU32(out, m)
		for j := uint32(0); j < m && r.err == nil; j++ {
			if flags < 4 { // function indices
				out = appendU32(out, w.fn(r.u32()))
				continue
			}
			if out, err = w.expr(out, &r, false); err != nil {
				return nil, fmt.Errorf("element segment %d: %w", i, err)
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// codeSection rewrites every function body.
func (w *rewriter) codeSection(body []byte) ([]byte, error) {
	r := wasmReader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	out := make([]byte, 0, len(body)+len(body)/8)
	out = appendU32(out, n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		code := r.bytes(size)
		if r.err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, r.err)
		}
		var err error
		if fn, err = w.functionBody(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// functionBody appends the rewritten function body code to out.
func (w *rewriter) functionBody(out, code []byte) ([]byte, error) {
	r := wasmReader{b: code}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()  // count
		r.byte() // valtype
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %w", r.err)
	}
	out = append(out, code[:r.off]...)
	entry := len(out)
	out, err := w.expr(out, &r, true)
	if err != nil {
		return nil, err
	}
	if w.calls {
		out = slices.Insert(out, entry, w.check...)
	}
	if r.off != len(code) {
		return nil, fmt.Errorf("%d bytes after the final end", len(code)-r.off)
	}
	return out, nil
}

// expr copies one expression, up to and including its final end, from r
// to out, renumbering function references and, when checks is set,
// inserting w.check at the top of every loop. It records in w.calls
// whether the expression calls a function.
func (w *rewriter) expr(out []byte, r *wasmReader, checks bool) ([]byte, error) {
	depth := 0
	w.calls = false
	for {
		at := r.off
		op, err := r.skipInstr()
		if err != nil {
			return nil, fmt.Errorf("offset %#x: %w", at, err)
		}
		switch op {
		case 0x02, 0x04: // block, if
			depth++
		case 0x03: // loop
			depth++
			if checks {
				out = append(out, r.b[at:r.off]...)
				out = append(out, w.check...)
				continue
			}
		case 0x0b: // end
			if depth == 0 {
				return append(out, 0x0b), nil
			}
			depth--
		case 0x11, 0x13: // call_indirect, return_call_indirect
			w.calls = true
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			w.calls = w.calls || op != 0xd2
			ir := wasmReader{b: r.b[:r.off], off: at + 1}
			idx := ir.u32()
			if err := ir.end(); err != nil {
				return nil, fmt.Errorf("offset %#x: function index: %w", at, err)
			}
			out = appendU32(append(out, op), w.fn(idx))
			continue
		}
		out = append(out, r.b[at:r.off]...)
	}
}

// nameSection renumbers the function and local names of a "name" custom
// section (subsections 1 and 2) and copies the others. ok is false when
// the section does not parse: it is then dropped (it is debugging
// information; wazero reads it for stack traces only).
func (w *rewriter) nameSection(body []byte) (out []byte, ok bool) {
	r := wasmReader{b: body}
	r.bytes(r.u32()) // "name"
	out = append(out, body[:r.off]...)
	for r.off < len(body) && r.err == nil {
		id := r.byte()
		sub := r.bytes(r.u32())
		if r.err != nil {
			return nil, false
		}
		if id != 1 && id != 2 {
			out = appendSection(out, id, sub)
			continue
		}
		sr := wasmReader{b: sub}
		n := sr.u32()
		c := appendU32(nil, n)
		for i := uint32(0); i < n && sr.err == nil; i++ {
			c = appendU32(c, w.fn(sr.u32()))
			if id == 2 { // indirect name map: function → local name map
				m := sr.u32()
				c = appendU32(c, m)
				for j := uint32(0); j < m && sr.err == nil; j++ {
					c = appendU32(c, sr.u32())
					c = appendName(c, string(sr.bytes(sr.u32())))
				}
				continue
			}
			c = appendName(c, string(sr.bytes(sr.u32())))
		}
		if sr.end() != nil {
			return nil, false
		}
		out = appendSection(out, id, c)
	}
	return out, r.err == nil
}
