package testenv

import (
	"errors"
	"fmt"
)

// Program lets a program that is not a test (the demo, the benchmarks) use this package's
// helpers: it satisfies T, turning Fatalf into an error returned by Run, and runs the
// cleanups the helpers register when Stop is called.
type Program struct {
	cleanups []func()
}

type fatal struct{ msg string }

// Helper does nothing: a program has no test frames to hide.
func (p *Program) Helper() {}

// Logf prints a line.
func (p *Program) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// Fatalf ends the function given to Run with the message as its error.
func (p *Program) Fatalf(format string, args ...any) { panic(fatal{fmt.Sprintf(format, args...)}) }

// Cleanup registers f to run at Stop, last registered first.
func (p *Program) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

// Run calls f, returning the message of a Fatalf in it as an error.
func (p *Program) Run(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	return f()
}

// Stop runs the registered cleanups: it stops what the program started.
func (p *Program) Stop() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}
