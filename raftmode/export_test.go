package raftmode

// ClientKeySize is clientKeySize, for the external tests.
const ClientKeySize = clientKeySize
