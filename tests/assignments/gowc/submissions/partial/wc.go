// Splits on single spaces only: 3 + 0 + 0 of 6 (an empty text counts 1).
package wc

import "strings"

func Count(text string) int {
	return len(strings.Split(text, " "))
}
