// Package p2p is mqim's WebRTC peer (github.com/pion/webrtc/v3): it
// negotiates sessions with ROAP (package roap) over any Signaller — the
// server's MQTT topics im/u/{to}/signal/{from} in production, an in-memory
// hub in tests — and moves files with a filexfer.Engine over one ordered,
// reliable RTCDataChannel per session, labelled "filexfer".
//
// Sessions. Peer.Dial offers a new session and returns when its data
// channel is open; the callee's Peer answers automatically (Config.Accept
// may refuse with ERROR REFUSED) and reports the session to
// Config.OnSession. Several sessions per pair of users may be open at once,
// each with its own peer connection and engine. A signal to a user with no
// device online comes back as ERROR OFFLINE; an unanswered OFFER ends with
// ERROR TIMEOUT (Config.OfferTimeout); either side ends a session with
// Session.Close (SHUTDOWN).
//
// Resume. A session's engine outlives its peer connection. When the
// connection drops (or CloseConnection simulates that), Session.Reconnect
// (called by the dialing side itself with Config.AutoReconnect) renegotiates the same ROAP session with a new OFFER and a new peer
// connection; the engine describes unfinished outgoing files again and the
// receiver asks only for the chunks it still lacks. If both sides
// reconnect at once, roap's glare rule (lower user id wins) picks one offer.
//
// Backpressure. The data channel adapter blocks Engine sends while more
// than Settings.MaxBufferedAmount (1 MiB) is buffered and resumes on
// bufferedamountlow (Settings.BufferedAmountLowThreshold, 16 KiB). Frames
// are at most 65535 bytes because pion v3 cannot read a 65536-byte message.
//
// Settings. Every pion knob lives in Settings: ICE servers, loopback
// candidates (needed for pion-to-pion on one machine, never offered to
// browsers), mDNS (off: it multicasts), SetPrflxAcceptanceMinWait(0)
// (saves ~1s of setup when pion offers), ICE timeouts, and larger UDP
// socket buffers (the kernel default drops datagrams at data channel
// speeds, and each drop stalls SCTP until it retransmits).
//
// Known issues:
//   - ROAP addresses users, not devices: an OFFER reaches every device of
//     the callee and the first ANSWER wins; the other devices' answers
//     are dropped as out of state and they time out waiting for OK.
//   - Only the dialing side reconnects automatically; if that device is
//     gone, the session stays down until its transfers are sent again.
//   - Transfer state lives in memory: a receiver that restarts cannot
//     resume (its received-chunk map is gone).
package p2p
