package executor

import (
	"fmt"

	"github.com/mybuild/mybuild/parser"
)

// StepError is a step's failure, located at its Dockerfile instruction:
// "Dockerfile:12: COPY missing.txt /x: file not found in build context".
type StepError struct {
	Loc         parser.Location
	Instruction string
	Err         error
}

// Error implements error.
func (e *StepError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Loc, e.Instruction, e.Err)
}

// Unwrap returns the underlying error.
func (e *StepError) Unwrap() error { return e.Err }
