package wire

// MaxReadBatch bounds the reads of one ReadBatch and the answers of one
// Reply's read_answers: a replica drops (and counts) a ReadBatch with
// more, a client a reply with more. A client never has more reads
// outstanding than its window, 64 by default.
const MaxReadBatch = 256
