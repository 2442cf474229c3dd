package main

import "fmt"

func main() {
	var mode string
	var a, b int64
	fmt.Scan(&mode, &a, &b)
	switch mode {
	case "sum":
		fmt.Println(a + b)
	case "wrong":
		fmt.Println(a - b)
	case "spin":
		x := 0
		for {
			x++
		}
	case "alloc":
		v := make([]byte, a<<20)
		for i := range v {
			v[i] = 1
		}
		fmt.Println(v[a])
	case "panic":
		var m map[string]int
		m["x"] = 1
	}
}
