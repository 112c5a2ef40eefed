// Package viewchange owns the pure view-change logic of PBFT with
// signatures (Castro and Liskov, TOCS 2002, section 4.4): the structural
// validation of prepared certificates and VIEW-CHANGE messages, the
// NEW-VIEW decision (which stable checkpoint the new view starts from and
// which digest, or null request, is re-proposed at every sequence above
// it), the check a backup runs on a NEW-VIEW it receives, and the choice
// of a quorum of VIEW-CHANGEs by the new primary.
//
// Signatures are not its job: the caller verifies and decodes every signed
// message before handing it over, and keeps the signed bytes (the Signed
// fields) only so that they can be forwarded.
//
// It is pure: no I/O, no goroutines, no clock, no randomness. Every result
// depends only on the arguments, and Decide does not depend on the order
// of the VIEW-CHANGEs it is given. No input makes it panic.
package viewchange
