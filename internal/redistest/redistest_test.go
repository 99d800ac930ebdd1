package redistest

import "testing"

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	if got, err := s.Do("SET", "k", "v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("the killed server answered")
	}
	s.Kill() // idempotent
	s.Restart()
	// Nothing is persisted: the restarted server is empty.
	if got, err := s.Do("EXISTS", "k"); err != nil || got != ":0" {
		t.Fatalf("EXISTS after restart = %q, %v", got, err)
	}
}
