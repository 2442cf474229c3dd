// Does not compile: 0 of 6.
package wc

func Count(text string) int {
	return missing
}
