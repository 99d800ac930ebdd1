package sdk

import (
	"errors"
	"testing"
)

func TestStatusError(t *testing.T) {
	for _, c := range []struct {
		status Status
		want   error
		name   string
	}{
		{StatusNotFound, ErrNotFound, "NOT_FOUND"},
		{StatusBadArgument, ErrBadArgument, "BAD_ARGUMENT"},
		{StatusSerializationFailure, ErrSerializationFailure, "SERIALIZATION_FAILURE"},
		{StatusParseFailure, ErrParseFailure, "PARSE_FAILURE"},
		{StatusInvalidMemoryAccess, ErrInvalidMemoryAccess, "INVALID_MEMORY_ACCESS"},
		{StatusEmpty, ErrEmpty, "EMPTY"},
		{StatusCasMismatch, ErrCasMismatch, "CAS_MISMATCH"},
		{StatusInternalFailure, ErrInternalFailure, "INTERNAL_FAILURE"},
		{StatusUnimplemented, ErrUnimplemented, "UNIMPLEMENTED"},
	} {
		if got := StatusError(c.status); got != c.want {
			t.Errorf("StatusError(%d) = %v, want %v", c.status, got, c.want)
		}
		if got := c.status.String(); got != c.name {
			t.Errorf("Status(%d).String() = %q, want %q", c.status, got, c.name)
		}
		err := hostError("proxy_get_property", uint32(c.status))
		if !errors.Is(err, c.want) {
			t.Errorf("hostError(%d) = %v, does not match %v", c.status, err, c.want)
		}
		if want := "sdk: proxy_get_property: " + c.name; err.Error() != want {
			t.Errorf("hostError(%d).Error() = %q, want %q", c.status, err, want)
		}
		var he *HostError
		if !errors.As(err, &he) || he.Call != "proxy_get_property" || he.Status != c.status {
			t.Errorf("hostError(%d) = %#v, want a *HostError naming the call and status", c.status, err)
		}
	}
	if err := StatusError(StatusOK); err != nil {
		t.Errorf("StatusError(OK) = %v, want nil", err)
	}
	if err := hostError("proxy_log", 0); err != nil {
		t.Errorf("hostError(OK) = %v, want nil", err)
	}
	for _, code := range []Status{5, 9, 11, 13, 0xFFFFFFFF} {
		err := StatusError(code)
		if !errors.Is(err, ErrUnknownStatus) {
			t.Errorf("StatusError(%d) = %v, want ErrUnknownStatus", code, err)
		}
		if want := "sdk: unknown status " + utoa(uint64(code)); err.Error() != want {
			t.Errorf("StatusError(%d).Error() = %q, want %q", code, err, want)
		}
		if !errors.Is(hostError("proxy_done", uint32(code)), ErrUnknownStatus) {
			t.Errorf("hostError(%d) does not match ErrUnknownStatus", code)
		}
	}
}

func TestU32Arg(t *testing.T) {
	for _, c := range []struct {
		n    int
		want uint32
		ok   bool
	}{{0, 0, true}, {7, 7, true}, {0xFFFFFFFF, 0xFFFFFFFF, true}, {-1, 0, false}, {1 << 32, 0, false}} {
		got, err := u32Arg("start", c.n)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("u32Arg(%d) = %d, %v", c.n, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadArgument) {
			t.Errorf("u32Arg(%d) error %v does not wrap ErrBadArgument", c.n, err)
		}
	}
	if _, err := u32Arg("maxSize", -5); err == nil || err.Error() != "sdk: argument maxSize = -5 is outside 0..4294967295" {
		t.Errorf("u32Arg(-5) error %q", err)
	}
}

func TestStringers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ActionContinue.String(), "continue"},
		{ActionPause.String(), "pause"},
		{Action(3).String(), "action(3)"},
		{LogLevelTrace.String(), "trace"},
		{LogLevelCritical.String(), "critical"},
		{LogLevel(9).String(), "loglevel(9)"},
		{Status(99).String(), "STATUS(99)"},
		{utoa(0), "0"},
		{utoa(18446744073709551615), "18446744073709551615"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestHostErrorsShared checks that a call failing the same way twice
// returns one shared error (no allocation), that different calls or
// statuses get their own, and that the cache is bounded.
func TestHostErrorsShared(t *testing.T) {
	var c hostErrors
	a, b := c.get("proxy_get_shared_data", StatusNotFound), c.get("proxy_get_shared_data", StatusNotFound)
	if a != b {
		t.Error("the same call and status gave two errors")
	}
	if !errors.Is(a, ErrNotFound) || a.Error() != "sdk: proxy_get_shared_data: NOT_FOUND" {
		t.Errorf("error %q does not match ErrNotFound", a)
	}
	if c.get("proxy_get_property", StatusNotFound) == a || c.get("proxy_get_shared_data", StatusBadArgument) == a {
		t.Error("another call or status shared the error")
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.get("proxy_get_shared_data", StatusNotFound) }); n != 0 {
		t.Errorf("a cached error allocates %v times", n)
	}
	for i := range 2 * maxCachedErrors {
		if e := c.get("call", Status(100+i)); e.Status != Status(100+i) || e.Call != "call" {
			t.Fatalf("error %d = %+v", i, e)
		}
	}
	if len(c.errs) != maxCachedErrors {
		t.Errorf("%d cached errors, want the bound %d", len(c.errs), maxCachedErrors)
	}
	if hostError("x", uint32(StatusOK)) != nil {
		t.Error("StatusOK gave an error")
	}
}
