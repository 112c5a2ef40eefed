// Package simtest holds what the simulators' tests share: how many seeds
// a test runs, and whether the test binary runs under the race detector.
package simtest
