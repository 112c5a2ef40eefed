// Package checkpoint owns PBFT checkpoint certificates and the watermark
// window: which signed CHECKPOINT votes make a checkpoint stable (2f+1
// matching votes from distinct replicas), where the low and high watermarks
// sit, and what may be garbage-collected once a checkpoint is stable.
//
// It is pure: no I/O, no goroutines, no clock. The protocol core feeds it
// votes whose signatures the runtime has already verified.
package checkpoint
