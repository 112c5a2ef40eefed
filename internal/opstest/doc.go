// Package opstest reads a replica's operations endpoints (/metrics,
// /status, ...) in tests. It imports no runtime, so the shell's own tests
// can use it as well as the runtimes'.
package opstest
