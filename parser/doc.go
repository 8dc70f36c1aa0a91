// Package parser reads Dockerfiles into typed instructions.
//
// It is the only package of mybuild that imports BuildKit: [Parse] runs
// BuildKit's Dockerfile parser and instruction decoder and hands out this
// package's own types ([Dockerfile], [Stage], [Run], [Copy], ...), each
// carrying its [Location] in the Dockerfile and its original text. Nothing is
// expanded here; [Expander] does variable substitution with BuildKit's shell
// lexer when later stages know the environment, and [ParseMount] decodes
// RUN --mount values.
//
// Every error of [Parse] and [ParseTriggers] is an [*Error] naming the file
// and line, e.g. "Dockerfile:3: unknown instruction: FOO".
package parser
