package sdk

import "errors"

// Status is a Proxy-Wasm host call result (proxy_status_t).
type Status uint32

// Status codes of ABI v0.2.1.
const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCasMismatch          Status = 8
	StatusInternalFailure      Status = 10
	StatusUnimplemented        Status = 12
)

// Sentinel errors returned by the host call wrappers, one per non-OK status.
// Compare with errors.Is: wrappers may wrap them with more context.
var (
	ErrNotFound             = errors.New("sdk: not found")
	ErrBadArgument          = errors.New("sdk: bad argument")
	ErrSerializationFailure = errors.New("sdk: serialization failure")
	ErrParseFailure         = errors.New("sdk: parse failure")
	ErrInvalidMemoryAccess  = errors.New("sdk: invalid memory access")
	ErrEmpty                = errors.New("sdk: empty")
	ErrCasMismatch          = errors.New("sdk: compare-and-swap mismatch")
	ErrInternalFailure      = errors.New("sdk: internal failure")
	ErrUnimplemented        = errors.New("sdk: unimplemented")
	// ErrUnknownStatus is wrapped by StatusError for codes the ABI does not
	// define.
	ErrUnknownStatus = errors.New("sdk: unknown status")
)

// StatusError maps a host status code to an error: nil for StatusOK, one of
// the sentinel errors for the codes ABI v0.2.1 defines, and an error wrapping
// ErrUnknownStatus (naming the code) for anything else.
func StatusError(s Status) error {
	switch s {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	case StatusBadArgument:
		return ErrBadArgument
	case StatusSerializationFailure:
		return ErrSerializationFailure
	case StatusParseFailure:
		return ErrParseFailure
	case StatusInvalidMemoryAccess:
		return ErrInvalidMemoryAccess
	case StatusEmpty:
		return ErrEmpty
	case StatusCasMismatch:
		return ErrCasMismatch
	case StatusInternalFailure:
		return ErrInternalFailure
	case StatusUnimplemented:
		return ErrUnimplemented
	}
	return &unknownStatusError{code: s}
}

type unknownStatusError struct{ code Status }

func (e *unknownStatusError) Error() string {
	return "sdk: unknown status " + utoa(uint64(e.code))
}

func (e *unknownStatusError) Unwrap() error { return ErrUnknownStatus }

// String returns the status's spec name, e.g. "NOT_FOUND", or "STATUS(N)".
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusBadArgument:
		return "BAD_ARGUMENT"
	case StatusSerializationFailure:
		return "SERIALIZATION_FAILURE"
	case StatusParseFailure:
		return "PARSE_FAILURE"
	case StatusInvalidMemoryAccess:
		return "INVALID_MEMORY_ACCESS"
	case StatusEmpty:
		return "EMPTY"
	case StatusCasMismatch:
		return "CAS_MISMATCH"
	case StatusInternalFailure:
		return "INTERNAL_FAILURE"
	case StatusUnimplemented:
		return "UNIMPLEMENTED"
	}
	return "STATUS(" + utoa(uint64(s)) + ")"
}

// HostError is the error a host call wrapper returns for a non-OK status.
// errors.Is(err, ErrNotFound) and friends match it through Unwrap.
//
// Errors the SDK returns are shared between calls that fail alike: do
// not modify one.
type HostError struct {
	// Call is the host function's ABI name, e.g. "proxy_get_header_map_value".
	Call string
	// Status is the code the host returned.
	Status Status
}

// Error returns e.g. "sdk: proxy_get_property: NOT_FOUND".
func (e *HostError) Error() string { return "sdk: " + e.Call + ": " + e.Status.String() }

// Unwrap returns the sentinel error for the status (see StatusError).
func (e *HostError) Unwrap() error { return StatusError(e.Status) }

// hostError returns nil for StatusOK and a *HostError otherwise. The
// error is shared by every failure of that call with that status (see
// hostErrors): callers must not modify it.
func hostError(call string, status uint32) error {
	if status == uint32(StatusOK) {
		return nil
	}
	return hostErrs.get(call, Status(status))
}

// maxCachedErrors bounds hostErrors: the SDK has about 60 host calls and a
// plugin meets a handful of (call, status) pairs.
const maxCachedErrors = 64

// hostErrors keeps the *HostError of each (call, status) pair met, so that
// a call failing the same way on every request (NOT_FOUND for a missing
// shared-data key or header) allocates nothing: an allocation costs a Go
// guest about half a microsecond. Past maxCachedErrors pairs, errors are
// made afresh. Not safe for concurrent use (one callback at a time).
type hostErrors struct{ errs []*HostError }

var hostErrs hostErrors

func (c *hostErrors) get(call string, st Status) *HostError {
	for _, e := range c.errs {
		if e.Status == st && e.Call == call {
			return e
		}
	}
	e := &HostError{Call: call, Status: st}
	if len(c.errs) < maxCachedErrors {
		c.errs = append(c.errs, e)
	}
	return e
}

// u32Arg converts a caller's int argument to the ABI's u32, rejecting
// negative values and values above 2^32-1 with an error wrapping
// ErrBadArgument that names the argument.
func u32Arg(name string, n int) (uint32, error) {
	if n < 0 || uint64(n) > 0xFFFFFFFF {
		return 0, &argError{name: name, value: n}
	}
	return uint32(n), nil
}

type argError struct {
	name  string
	value int
}

func (e *argError) Error() string {
	v := utoa(uint64(e.value))
	if e.value < 0 {
		v = "-" + utoa(uint64(-int64(e.value)))
	}
	return "sdk: argument " + e.name + " = " + v + " is outside 0..4294967295"
}

func (e *argError) Unwrap() error { return ErrBadArgument }
