// Parses Dockerfiles with BuildKit's own parser and instruction decoder (unknown instructions,
// unknown flags such as a mistyped --mount/--chmod, bad heredocs): `go run . Dockerfile...`.
// Used by tests/deploy/test_dockerfiles.py; dependencies come from the Go module proxy.
package main

import (
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	status := 0
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		res, err := parser.Parse(f)
		f.Close()
		if err != nil {
			fmt.Printf("%s: parse: %v\n", path, err)
			status = 1
			continue
		}
		stages, metaArgs, err := instructions.Parse(res.AST, nil)
		if err != nil {
			fmt.Printf("%s: instructions: %v\n", path, err)
			status = 1
			continue
		}
		for _, w := range res.Warnings {
			fmt.Printf("%s: warning: %s\n", path, w.Short)
			status = 1
		}
		fmt.Printf("%s: OK (%d stages, %d ARGs)\n", path, len(stages), len(metaArgs))
	}
	os.Exit(status)
}
