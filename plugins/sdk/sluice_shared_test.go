package sdk

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSharedDataArgs(t *testing.T) {
	if got, want := sharedDataDeleteArgs("k", 0x01020304), []byte{4, 3, 2, 1, 'k'}; !bytes.Equal(got, want) {
		t.Errorf("delete args %v, want %v", got, want)
	}
	got, err := sharedDataPolicyArgs("ca/", 1500*time.Microsecond, true)
	if want := []byte{2, 0, 0, 0, 1, 0, 0, 0, 'c', 'a', '/'}; err != nil || !bytes.Equal(got, want) {
		t.Errorf("policy args %v %v, want %v", got, err, want)
	}
	for _, c := range []struct {
		prefix string
		ttl    time.Duration
	}{{"", -1}, {"", 721 * time.Hour}, {string(make([]byte, 257)), time.Second}} {
		if _, err := sharedDataPolicyArgs(c.prefix, c.ttl, false); !errors.Is(err, ErrBadArgument) {
			t.Errorf("policy args (%d-byte prefix, %s): err %v", len(c.prefix), c.ttl, err)
		}
	}
}
