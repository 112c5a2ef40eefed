// Package localnettest starts local clusters (internal/localnet) for
// tests and drives them: the helpers the runtimes' tests share, so that
// no runtime's package carries its own copy.
package localnettest
