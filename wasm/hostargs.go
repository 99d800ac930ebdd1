package wasm

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// hostArgs reads the guest-memory arguments of one host call, in order,
// through the accessors in memory.go. Every read checks its bounds; the
// first that fails turns ok false, and refused then answers
// INVALID_MEMORY_ACCESS. It lives on the host function's stack for one
// call; the bytes it returns are views into guest memory (see readGuest).
type hostArgs struct {
	in    *instance // the calling instance; nil when there is none
	mem   guestMemory
	stack []uint64
	ok    bool
}

// argsOf starts reading the arguments of a host call. When there is no
// instance to serve it, callerOf has written INTERNAL_FAILURE, the reads
// return nothing and refused reports true.
func argsOf(ctx context.Context, mod api.Module, stack []uint64) hostArgs {
	in := callerOf(ctx, stack)
	if in == nil {
		return hostArgs{stack: stack}
	}
	return in.args(mod, stack)
}

// args starts reading the arguments of a host call that in serves: the
// form for host functions that return their status (onInstance), which
// test ok rather than refused.
func (in *instance) args(mod api.Module, stack []uint64) hostArgs {
	return hostArgs{in: in, mem: in.memOf(mod), stack: stack, ok: true}
}

// bytes returns the guest bytes whose pointer and size are the call's
// arguments i and i+1: a view, empty for a zero size.
func (a *hostArgs) bytes(i int) []byte {
	b, ok := readGuest(a.mem, u32(a.stack[i]), u32(a.stack[i+1]))
	a.ok = a.ok && ok
	return b
}

// retU32 returns argument i, where the call returns a u32, once the four
// bytes there are known to be in memory.
func (a *hostArgs) retU32(i int) uint32 {
	ptr := u32(a.stack[i])
	a.ok = a.ok && a.mem != nil && inBounds(a.mem.Size(), ptr, 4)
	return ptr
}

// retPair returns arguments i and i+1, where the call returns a buffer's
// address and size, once both are known to be writable (checkRetPair).
func (a *hostArgs) retPair(i int) (ptrPtr, sizePtr uint32) {
	ptrPtr, sizePtr = u32(a.stack[i]), u32(a.stack[i+1])
	a.ok = a.ok && checkRetPair(a.mem, ptrPtr, sizePtr)
	return ptrPtr, sizePtr
}

// refused reports whether the call cannot go on, its status already in
// stack[0]: INTERNAL_FAILURE with no caller, INVALID_MEMORY_ACCESS when
// an argument read so far was out of bounds.
func (a *hostArgs) refused() bool {
	if a.in != nil && !a.ok {
		a.stack[0] = uint64(statusInvalidMemoryAccess)
	}
	return !a.ok
}
