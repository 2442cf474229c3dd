// Spins forever on a tab: 3 + 0 + 2 of 6.
package wc

import "strings"

func Count(text string) int {
	for strings.Contains(text, "\t") {
	}
	return len(strings.Fields(text))
}
