package testsync

import "testing"

func TestGrep(t *testing.T) {
	check := func(text, sub, want string) {
		t.Helper()
		if got := Grep(text, sub); got != want {
			t.Errorf("Grep(%q, %q) = %q, want %q", text, sub, got, want)
		}
	}
	check("a 1\nb 2\na 3\n", "a", "a 1\na 3")
	check("a 1\nb 2", "c", "")
	check("", "a", "")
	check("x\n\ny", "", "x\n\ny")
}
