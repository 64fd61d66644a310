// Package p2p is mqim's WebRTC peer (github.com/pion/webrtc/v3): it
// negotiates sessions with ROAP (package roap) over any Signaller — the
// server's MQTT topics im/u/{to}/signal/{from} in production
// (MQTTSignaller, over an imclient connection), an in-memory hub in tests
// (MemorySignalling) — and moves files with a filexfer.Engine over one
// ordered, reliable RTCDataChannel per session, labelled "filexfer".
// `mqim send-file` and `mqim recv-files` (package cli) are built on it.
//
// Sessions. Peer.Dial offers a new session and returns when its data
// channel is open; the callee's Peer answers automatically (Config.Accept
// may refuse with ERROR REFUSED) and reports the session to
// Config.OnSession. Several sessions per pair of users may be open at once,
// each with its own peer connection and engine. A signal to a user with no
// device online comes back as ERROR OFFLINE; an unanswered OFFER ends with
// ERROR TIMEOUT (Config.OfferTimeout); either side ends a session with
// Session.Close (SHUTDOWN), which first lets the data channel deliver what
// was sent (closing a peer connection discards SCTP's queue, and the last
// frame is often the receiver's Complete).
//
// Candidates. The ANSWER waits for ICE gathering (Settings.GatherWait,
// 100 ms at most) and carries the answerer's host candidates in its SDP;
// later ones trickle as CANDIDATE. The OFFER carries none, and the
// offerer's candidates follow only once the ANSWER is applied: pion's
// controlling agent must know the answerer's candidates before the
// answerer's first check reaches it, or it files the answerer as
// peer-reflexive and nominates only at its next check round, 200 ms later
// (pion v3 does not let us shorten that interval). Holding our candidates
// back means we check first; the answerer learns our address from that
// check and its triggered check back lets us nominate at once. Through the
// server this took offer-to-open p99 from ~207 ms to 6-26 ms.
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
//   - ROAP addresses users, not devices: an OFFER reaches every online
//     device of the callee and the first ANSWER wins; the caller drops the
//     other answers as out of state. Its OK and SHUTDOWN reach every device
//     too, so the losing devices hold a connection that never completes
//     until the SHUTDOWN; they must not send ERROR (it would end the
//     session that won), and neither pion's failure handling nor the web
//     client's callee side does.
//   - pion v3 runs ICE checks every 200 ms and its SettingEngine cannot
//     change that; a session whose first check round misses (a lost
//     datagram, or an answerer that trickles late) still opens 200 ms late.
//   - Throughput is bound by CPU in pion: every 1.2 KB SCTP packet costs a
//     DTLS record, a syscall and ~15 allocations, so two peers on one
//     2-core machine top out near 50-80 MB/s; BenchmarkRawDataChannel
//     measures that ceiling beside BenchmarkTransferPion.
//   - Only the dialing side reconnects automatically; if that device is
//     gone, the session stays down until its transfers are sent again.
//   - Transfer state lives in memory: a receiver that restarts cannot
//     resume (its received-chunk map is gone).
package p2p
