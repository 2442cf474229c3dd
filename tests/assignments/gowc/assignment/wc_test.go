package wc

import "testing"

func TestCount(t *testing.T) {
	if got := Count("the quick brown fox"); got != 4 {
		t.Fatalf("Count = %d, want 4", got)
	}
}

func TestTable(t *testing.T) {
	cases := map[string]struct {
		text string
		want int
	}{
		"tabs":   {"a\tb\nc", 3},
		"spaces": {"  a  b ", 2},
	}
	for name, c := range cases {
		c := c
		t.Run(name, func(t *testing.T) {
			if got := Count(c.text); got != c.want {
				t.Fatalf("Count(%q) = %d, want %d", c.text, got, c.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	if got := Count(""); got != 0 {
		t.Fatalf("Count(\"\") = %d, want 0", got)
	}
}
