// Package filexfer moves files over any message channel (in mqim, an
// ordered reliable RTCDataChannel) with the binary frames of the seed
// paper's Table 2:
//
//	frame  = type(1) field*
//	field  = length(2, big-endian) bytes
//
//	0x10 describe  fileID, name, size(8), mime, sha256(32), chunkSize(4)   sender -> receiver
//	0x11 complete  fileID                                                 receiver -> sender (extension)
//	0x12 digest    fileID, sha256(32)                                     sender -> receiver (extension)
//	0x20 request   fileID, ranges (n x [first(4) count(4)])               receiver -> sender
//	0x40 chunk     fileID, chunkID(4), data                               sender -> receiver
//	0x80 cancel    fileID [, reason(1)]                                   either way
//
// Extensions over the paper: describe carries the SHA-256 of the whole file
// and the chunk size; a request names ranges of chunks rather than one
// chunk; 0x11 tells the sender the file arrived intact; cancel may carry a
// one-byte reason (0 cancelled, 1 declined, 2 SHA-256 mismatch, 3 I/O
// error, 4 unknown file, 5 too large, 6 receiver busy). 0x12 carries the
// SHA-256 of a file described with sha256 all zero ("digest follows"):
// a sender describes a file and serves its chunks at once, hashes it
// meanwhile and then sends the digest; a describe sent again after a
// reconnect carries the hash if it is known by then, standing in for a
// digest lost with the old channel. Receivers also take a describe that
// carries the hash (senders before 0x12). Sizes are capped
// at 2^53-1 so JavaScript numbers hold them exactly. A frame is at most
// 65535 bytes (pion/webrtc v3 cannot read a 65536-byte message), which
// bounds a chunk to MaxChunkSize; senders use 16 KiB. Decoders ignore
// well-formed fields after the defined ones, so fields can be appended
// later; the Go and JavaScript codecs share testdata/vectors/frames.json.
//
// The Engine is receiver-driven: the receiver asks for the chunks it
// lacks, a window at a time, which gives flow control, re-request of lost
// chunks (early, from the order chunks come back in, and by timeout) and
// resume after a reconnect asking only for what is missing. The receiver
// verifies the SHA-256 before it reports a file done: it hashes the file
// once every chunk is in and, if the digest has not come yet, checks it
// when it does (waiting at most Config.StallTimeout).
package filexfer
