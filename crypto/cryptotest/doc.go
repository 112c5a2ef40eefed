// Package cryptotest gives tests deterministic Ed25519 keys. It is for
// tests only: its keys are derived from small seeds and are not secret.
package cryptotest
