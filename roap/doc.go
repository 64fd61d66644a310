// Package roap is mqim's signalling model: the ROAP messages of the seed
// paper's Table 1 (OFFER, ANSWER, OK, CANDIDATE, SHUTDOWN, ERROR) as JSON on
// im/u/{to}/signal/{from}, a strict decoder shared byte-for-byte with the
// web client (testdata/vectors/roap.json), and a Manager that runs the
// offer/answer state machine for many sessions per peer with timeouts on an
// injected Clock and a deterministic glare rule (lower user id wins).
//
// A negotiation goes
//
//	caller                      callee
//	OFFER(sdp)      ------->    EventOffer      -> Answer
//	EventAnswer     <-------    ANSWER(sdp)
//	Confirm -> OK   ------->    EventOpen
//	CANDIDATE       <------>    CANDIDATE        (any time before close)
//	SHUTDOWN | ERROR <----->    EventClosed
//
// An OFFER on an open session renegotiates it; that is how a transfer
// resumes after its connection dropped.
package roap
