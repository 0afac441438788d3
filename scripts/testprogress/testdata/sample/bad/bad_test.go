package bad

import "testing"

func TestFails(t *testing.T) {
	t.Run("sub", func(t *testing.T) {
		t.Log("context before the failure")
		t.Error("got 1; want 2")
	})
}

func TestPassesToo(t *testing.T) {}
