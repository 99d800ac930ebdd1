package wasm

import (
	"errors"
	"fmt"
)

// The WebAssembly binary format, as far as addStopChecks needs it: a
// section scanner that checks every vector count, a reader that skips any
// WebAssembly 2.0 instruction, and LEB128 writers.

// Section ids (WebAssembly core specification, binary format).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunc      = 3
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// sectionRank is the position a non-custom section must have in a module:
// the binary format requires this order (the tag section, 13, sits between
// memory and global; data count, 12, between element and code). 0 for an
// unknown id.
func sectionRank(id byte) int {
	switch id {
	case 1, 2, 3, 4, 5:
		return int(id)
	case 13:
		return 6
	case 6, 7, 8, 9:
		return int(id) + 1
	case 12:
		return 11
	case 10, 11:
		return int(id) + 2
	}
	return 0
}

// section is one section of a module: body aliases the input.
type section struct {
	id       byte
	name     string // custom sections only
	body     []byte
	countLen int // bytes of the leading vector count (type, import)
}

// moduleScan is what addStopChecks needs to know about a module.
type moduleScan struct {
	sections        []section
	types           uint32
	imports         uint32
	importedFuncs   uint32
	importedGlobals uint32
	funcs           uint32 // defined (function section)
	globals         uint32 // defined (global section)
	exports         []string
	hasStart        bool
	startFunc       uint32
}

func (m *moduleScan) has(id byte) bool {
	for _, s := range m.sections {
		if s.id == id {
			return true
		}
	}
	return false
}

// scanModule splits bin into sections, reads the counts and names the
// rewrite needs, and checks every vector count against the bytes that
// hold it. The compiler (wazero) allocates what a count declares before it
// reads the entries, so a malformed count would otherwise cost gigabytes:
// FuzzAddStopChecks found a 164-byte module that made it allocate 11 GB.
// The type, data and code sections are walked for their inner counts
// (parameters, segment sizes, locals); the others the rewrite parses
// entry by entry anyway.
func scanModule(bin []byte) (*moduleScan, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, errNotWasm
	}
	m := new(moduleScan)
	r := wasmReader{b: bin, off: 8}
	last := 0
	for r.off < len(bin) {
		at := r.off
		id := r.byte()
		size := r.u32()
		body := r.bytes(size)
		if r.err != nil {
			return nil, fmt.Errorf("section at offset %#x: %w", at, r.err)
		}
		s := section{id: id, body: body}
		if id == secCustom {
			cr := wasmReader{b: body}
			s.name = string(cr.bytes(cr.u32()))
			if cr.err != nil {
				return nil, fmt.Errorf("custom section at offset %#x: name: %w", at, cr.err)
			}
			m.sections = append(m.sections, s)
			continue
		}
		rank := sectionRank(id)
		if rank == 0 {
			return nil, fmt.Errorf("section at offset %#x: unknown section id %d", at, id)
		}
		if rank <= last {
			return nil, fmt.Errorf("section at offset %#x: section id %d out of order or repeated", at, id)
		}
		last = rank
		cr := wasmReader{b: body}
		var err error
		var count uint32
		if id != secStart && id != secDataCount {
			count = cr.u32()
			s.countLen = cr.off
			if cr.err == nil && uint64(count) > uint64(len(body)-cr.off) {
				return nil, fmt.Errorf("section id %d at offset %#x: %d entries in %d bytes", id, at, count, len(body)-cr.off)
			}
		}
		switch id {
		case secType:
			m.types = count
			err = checkTypes(&cr, count)
		case secImport:
			m.imports = count
			m.importedFuncs, m.importedGlobals, err = countImports(&cr, count)
		case secFunc:
			m.funcs = count
		case secGlobal:
			m.globals = count
		case secExport:
			m.exports, err = exportNames(&cr, count)
		case secStart:
			m.startFunc, m.hasStart = cr.u32(), true
		case secCode:
			err = checkCode(&cr, count)
		case secData:
			err = checkData(&cr, count)
		}
		if err == nil {
			err = cr.err
		}
		if err != nil {
			return nil, fmt.Errorf("section id %d at offset %#x: %w", id, at, err)
		}
		m.sections = append(m.sections, s)
	}
	return m, nil
}

// checkTypes walks the n function types of a type section.
func checkTypes(r *wasmReader, n uint32) error {
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 && r.err == nil {
			return fmt.Errorf("%w: type %d: form %#x (only function types are supported)", errUnsupported, i, form)
		}
		r.bytes(r.u32()) // parameters: one byte per value type
		r.bytes(r.u32()) // results
	}
	return r.err
}

// checkData walks the n segments of a data section.
func checkData(r *wasmReader, n uint32) error {
	for i := uint32(0); i < n && r.err == nil; i++ {
		switch flags := r.u32(); flags {
		case 0: // active, memory 0
			r.skipExpr()
		case 1: // passive
		case 2: // active, explicit memory
			r.u32()
			r.skipExpr()
		default:
			if r.err == nil {
				return fmt.Errorf("data segment %d: flags %d", i, flags)
			}
		}
		r.bytes(r.u32())
	}
	return r.err
}

// checkCode walks the n bodies of a code section and their locals.
func checkCode(r *wasmReader, n uint32) error {
	for i := uint32(0); i < n && r.err == nil; i++ {
		br := wasmReader{b: r.bytes(r.u32())}
		groups := br.u32()
		var locals uint64
		for j := uint32(0); j < groups && br.err == nil; j++ {
			locals += uint64(br.u32())
			br.byte() // value type
		}
		if br.err != nil {
			return fmt.Errorf("function body %d: locals: %w", i, br.err)
		}
		if locals > maxLocals {
			return fmt.Errorf("%w: function body %d declares %d locals (at most %d)", errLimit, i, locals, maxLocals)
		}
	}
	return r.err
}

// countImports counts the function and global imports among the n entries
// of an import section.
func countImports(r *wasmReader, n uint32) (funcs, globals uint32, err error) {
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(r.u32()) // module
		r.bytes(r.u32()) // name
		switch kind := r.byte(); kind {
		case 0x00: // func: type index
			r.u32()
			funcs++
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		default:
			if r.err == nil {
				return 0, 0, fmt.Errorf("%w: import %d: import kind %#x", errUnsupported, i, kind)
			}
		}
	}
	return funcs, globals, r.err
}

// exportNames returns the names of the n entries of an export section.
func exportNames(r *wasmReader, n uint32) ([]string, error) {
	var names []string
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.bytes(r.u32())
		r.byte() // kind
		r.u32()  // index
		names = append(names, string(name))
	}
	return names, r.err
}

// wasmReader decodes the binary format. The first error sticks: later
// reads return zero values, so callers check err once after a group.
type wasmReader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("unexpected end of data")

func (r *wasmReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

// end returns the sticky error, or an error if bytes are left over.
func (r *wasmReader) end() error {
	if r.err == nil && r.off != len(r.b) {
		return fmt.Errorf("%d unexpected bytes at the end", len(r.b)-r.off)
	}
	return r.err
}

func (r *wasmReader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// bytes returns the next n bytes (a view of the input).
func (r *wasmReader) bytes(n uint32) []byte {
	if r.err != nil || uint64(n) > uint64(len(r.b)-r.off) {
		r.fail(errTruncated)
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// u32 reads an unsigned LEB128 value of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift == 28 && c&0x70 != 0 {
			r.fail(errors.New("integer too large for 32 bits"))
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("integer representation too long"))
	return 0
}

// skipLEB skips a LEB128 value of at most max bytes (its value is
// validated by the compiler, not here).
func (r *wasmReader) skipLEB(max int) {
	for range max {
		if r.byte()&0x80 == 0 || r.err != nil {
			return
		}
	}
	r.fail(errors.New("integer representation too long"))
}

// limits skips a table or memory's limits.
func (r *wasmReader) limits() {
	flags := r.byte()
	r.skipLEB(10)
	if flags&1 != 0 {
		r.skipLEB(10)
	}
}

// skipInstr skips one instruction and its immediates and returns its
// opcode (the prefix byte for prefixed instructions).
func (r *wasmReader) skipInstr() (byte, error) {
	op := r.byte()
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if: blocktype (s33)
		r.skipLEB(5)
	case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1,
		op >= 0x45 && op <= 0xc4: // no immediates
	case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, // br, br_if, call, return_call
		op >= 0x20 && op <= 0x26, // local.*, global.*, table.get/set
		op == 0x3f, op == 0x40,   // memory.size, memory.grow (memory index)
		op == 0xd0, op == 0xd2: // ref.null (heap type), ref.func
		r.skipLEB(5)
	case op == 0x0e: // br_table: vec(label) label
		n := r.u32()
		for i := uint64(0); i <= uint64(n) && r.err == nil; i++ {
			r.skipLEB(5)
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect: type, table
		r.skipLEB(5)
		r.skipLEB(5)
	case op == 0x1c: // select t*
		r.bytes(r.u32())
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		r.memarg()
	case op == 0x41: // i32.const
		r.skipLEB(5)
	case op == 0x42: // i64.const
		r.skipLEB(10)
	case op == 0x43: // f32.const
		r.bytes(4)
	case op == 0x44: // f64.const
		r.bytes(8)
	case op == 0xfc:
		r.skipMisc()
	case op == 0xfd:
		r.skipSIMD()
	default:
		if r.err == nil {
			return 0, fmt.Errorf("%w opcode %#x", errUnsupported, op)
		}
	}
	return op, r.err
}

// skipExpr skips a constant expression, up to and including its end.
func (r *wasmReader) skipExpr() {
	for r.err == nil {
		if op, _ := r.skipInstr(); op == 0x0b {
			return
		}
	}
}

// memarg skips a memory argument: alignment and offset.
func (r *wasmReader) memarg() {
	r.skipLEB(5)
	r.skipLEB(10)
}

// skipMisc skips the immediates of a 0xfc-prefixed instruction
// (saturating truncation, bulk memory, table instructions).
func (r *wasmReader) skipMisc() {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 7: // trunc_sat
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		// data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.skipLEB(5)
	case sub == 8, sub == 10, sub == 12, sub == 14:
		// memory.init, memory.copy, table.init, table.copy
		r.skipLEB(5)
		r.skipLEB(5)
	default:
		r.fail(fmt.Errorf("%w opcode 0xfc %d", errUnsupported, sub))
	}
}

// skipSIMD skips the immediates of a 0xfd-prefixed (vector) instruction.
func (r *wasmReader) skipSIMD() {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 11, sub == 92, sub == 93: // v128 loads and stores
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		r.byte()
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		r.memarg()
		r.byte()
	case sub <= 255: // no immediates
	default:
		r.fail(fmt.Errorf("%w opcode 0xfd %d", errUnsupported, sub))
	}
}

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS32 appends v as signed LEB128.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}

func appendSection(b []byte, id byte, body []byte) []byte {
	b = append(b, id)
	b = appendU32(b, uint32(len(body)))
	return append(b, body...)
}
