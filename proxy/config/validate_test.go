package config

import (
	"errors"
	"testing"
)

// TestNameSet: a list's names must be present and distinct; the error
// names the entry's field and, for a repeat, the kind of name.
func TestNameSet(t *testing.T) {
	s := newNameSet("pool name", 2)
	for i, tc := range []struct {
		field, name, want string
	}{
		{"pools[0].name", "a", ""},
		{"pools[1].name", "b", ""},
		{"pools[2].name", "", "pools[2].name: must not be empty"},
		{"pools[3].name", "a", `pools[3].name: duplicate pool name "a"`},
		{"pools[4].name", "A", ""}, // names are case-sensitive
	} {
		err := s.add(tc.field, tc.name)
		var ce *Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d: add(%q) = %v, want nil", i, tc.name, err)
		case tc.want != "" && (!errors.As(err, &ce) || ce.Field != tc.field || err.Error() != "proxy: config: "+tc.want):
			t.Errorf("%d: add(%q) = %v, want %s", i, tc.name, err, tc.want)
		}
	}
}
