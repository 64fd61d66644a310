package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/roap"
)

// DataChannelLabel names the data channel that carries filexfer frames.
const DataChannelLabel = "filexfer"

// Errors of sessions and peers.
var (
	ErrPeerClosed = errors.New("p2p: peer closed")
	// ErrSessionEnded is wrapped by the error a Session ends with when it
	// was shut down normally (SHUTDOWN from either side).
	ErrSessionEnded = errors.New("p2p: session ended")
	// ErrIdle ends a session a peer opened to us whose connection stayed
	// down for Config.IdleTimeout.
	ErrIdle = errors.New("p2p: session idle: the peer's connection stayed down")
	// ErrTooManySessions is why an OFFER beyond Config.MaxSessions or
	// MaxSessionsPerPeer was refused.
	ErrTooManySessions = errors.New("p2p: too many sessions")
)

// SignalError is why a session failed in signalling: the ROAP errorType
// (OFFLINE, REFUSED, TIMEOUT, BAD_SDP, ...) and whether the peer or the
// server (Remote) or this side reported it.
type SignalError struct {
	Type   roap.ErrorType
	Remote bool
}

func (e *SignalError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return fmt.Sprintf("p2p: session failed: %s (%s)", e.Type, side)
}

// Config configures a Peer.
type Config struct {
	// Self is the local user id.
	Self string
	// Signaller sends ROAP messages; inbound ones go to HandleSignal.
	Signaller Signaller
	// Settings are the WebRTC knobs (zero value: DefaultSettings()).
	Settings *Settings
	// Transfer returns the filexfer configuration for a new session's
	// engine (callbacks may capture s, e.g. to Accept offered files on
	// s.Engine()). Nil uses the defaults, which decline incoming files.
	Transfer func(s *Session) filexfer.Config
	// Accept is asked whether to answer an OFFER from peer; nil accepts
	// everyone. A refused OFFER is answered with ERROR REFUSED.
	Accept func(peer string) bool
	// OnSession is told of each session a peer opens to us, before we
	// answer it.
	OnSession func(s *Session)
	// AutoReconnect makes the side that dialed a session renegotiate it
	// when its connection drops (ICE disconnected or failed, or the data
	// channel closed), retrying with backoff for up to ReconnectFor
	// (default 1 minute). Transfers resume where they stopped.
	AutoReconnect bool
	ReconnectFor  time.Duration
	// OfferTimeout and AnswerTimeout go to the roap.Manager (defaults 30s, 10s).
	OfferTimeout, AnswerTimeout time.Duration
	// Clock goes to the roap.Manager and times IdleTimeout (default: the
	// system clock).
	Clock roap.Clock
	// IdleTimeout ends a session a peer opened to us (closing its engine, so
	// its files end with filexfer.ErrClosed) once its connection has been
	// down this long: never opened, ICE failed, or connection or data
	// channel closed, and no renegotiating OFFER brought it back. The peer
	// is told nothing (see roap.Manager.Abandon). Default 2 minutes, longer
	// than a dialer's ReconnectFor; negative: never.
	IdleTimeout time.Duration
	// MaxSessions and MaxSessionsPerPeer bound the sessions peers may have
	// open to us at once (defaults 64 and 8; negative: no limit). An OFFER
	// beyond them is answered with ERROR REFUSED.
	MaxSessions, MaxSessionsPerPeer int
	// Logf receives diagnostics (dropped signals, refused frames); nil discards.
	Logf func(format string, args ...any)
}

// Peer is one user's WebRTC endpoint: it runs ROAP over the Signaller and
// a filexfer engine per session over an ordered, reliable data channel.
type Peer struct {
	cfg      Config
	settings Settings
	api      *webrtc.API
	roap     *roap.Manager

	mu       sync.Mutex
	sessions map[sessionKey]*Session
	closed   bool

	// wrapChannel, if set, wraps each data channel (tests drop frames with it).
	wrapChannel func(filexfer.Channel) filexfer.Channel
}

type sessionKey struct{ peer, id string }

// NewPeer returns a Peer; feed it inbound signals with HandleSignal.
func NewPeer(cfg Config) *Peer {
	st := DefaultSettings()
	if cfg.Settings != nil {
		st = *cfg.Settings
	}
	st.fill()
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.ReconnectFor <= 0 {
		cfg.ReconnectFor = time.Minute
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 64
	}
	if cfg.MaxSessionsPerPeer == 0 {
		cfg.MaxSessionsPerPeer = 8
	}
	if cfg.Clock == nil {
		cfg.Clock = roap.SystemClock{}
	}
	p := &Peer{cfg: cfg, settings: st, api: st.api(), sessions: make(map[sessionKey]*Session)}
	p.roap = roap.NewManager(roap.Config{
		Self:          cfg.Self,
		Send:          cfg.Signaller.SendSignal,
		OnEvent:       p.onEvent,
		Clock:         cfg.Clock,
		OfferTimeout:  cfg.OfferTimeout,
		AnswerTimeout: cfg.AnswerTimeout,
	})
	return p
}

// HandleSignal processes one inbound ROAP message. Messages that do not fit
// a session's state are dropped and reported as an error.
func (p *Peer) HandleSignal(msg roap.Message) error {
	if err := p.roap.Handle(msg); err != nil {
		p.cfg.Logf("p2p: %s: signal %s from %s dropped: %v", p.cfg.Self, msg.Type, msg.From, err)
		return err
	}
	return nil
}

// HandleSignalPayload decodes a payload that arrived on
// im/u/{me}/signal/{from} and handles it. The server guarantees who
// published on {from}, so a message whose own from field differs is refused.
func (p *Peer) HandleSignalPayload(from string, payload []byte) error {
	msg, err := roap.Decode(payload)
	if err != nil {
		return fmt.Errorf("p2p: signal from %s: %w", from, err)
	}
	if msg.From != from {
		return fmt.Errorf("p2p: signal on the topic of %q claims to be from %q: %w", from, msg.From, roap.ErrInvalidField)
	}
	return p.HandleSignal(msg)
}

// Dial opens a session to peer and returns once its data channel is open
// (or ctx ends, or the session fails: ERROR OFFLINE, REFUSED, TIMEOUT...).
func (p *Peer) Dial(ctx context.Context, peer string) (*Session, error) {
	s, err := p.newSession(peer, roap.NewSessionID(), true)
	if err != nil {
		return nil, err
	}
	if err := s.offer(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Sessions returns the live sessions.
func (p *Peer) Sessions() []*Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Session, 0, len(p.sessions))
	for _, s := range p.sessions {
		out = append(out, s)
	}
	return out
}

// Close shuts every session down (SHUTDOWN to each peer) and waits for
// their connections to close.
func (p *Peer) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for _, s := range p.Sessions() {
		s.Close()
	}
}

func (p *Peer) newSession(peer, id string, dialing bool) (*Session, error) {
	s := &Session{p: p, peer: peer, id: id, dialing: dialing, done: make(chan struct{}), open: make(chan struct{})}
	var fc filexfer.Config
	if p.cfg.Transfer != nil {
		fc = p.cfg.Transfer(s) // outside p.mu: the callback may use the Peer
	}
	s.engine = filexfer.NewEngine(fc)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		s.engine.Close()
		return nil, ErrPeerClosed
	}
	if !dialing {
		if err := p.admitLocked(peer); err != nil {
			s.engine.Close()
			return nil, err
		}
		s.mu.Lock()
		s.armIdleLocked() // until the first connection opens
		s.mu.Unlock()
	}
	p.sessions[sessionKey{peer, id}] = s
	return s, nil
}

// admitLocked checks Config.MaxSessions and MaxSessionsPerPeer for a new
// session peer opens to us; callers hold p.mu.
func (p *Peer) admitLocked(peer string) error {
	total, fromPeer := 0, 0
	for k, s := range p.sessions {
		if s.dialing {
			continue
		}
		total++
		if k.peer == peer {
			fromPeer++
		}
	}
	if limit := p.cfg.MaxSessions; limit > 0 && total >= limit {
		return fmt.Errorf("%w: %d open to us", ErrTooManySessions, total)
	}
	if limit := p.cfg.MaxSessionsPerPeer; limit > 0 && fromPeer >= limit {
		return fmt.Errorf("%w: %d open from %s", ErrTooManySessions, fromPeer, peer)
	}
	return nil
}

func (p *Peer) session(peer, id string) *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[sessionKey{peer, id}]
}

// onEvent runs the WebRTC side of each ROAP event.
func (p *Peer) onEvent(ev roap.Event) {
	s := p.session(ev.Peer, ev.SessionID)
	switch ev.Kind {
	case roap.EventOffer:
		if s == nil {
			if p.cfg.Accept != nil && !p.cfg.Accept(ev.Peer) {
				_ = p.roap.Fail(ev.Peer, ev.SessionID, roap.ErrorRefused)
				return
			}
			var err error
			if s, err = p.newSession(ev.Peer, ev.SessionID, false); err != nil {
				p.cfg.Logf("p2p: %s: session %s from %s refused: %v", p.cfg.Self, ev.SessionID, ev.Peer, err)
				_ = p.roap.Fail(ev.Peer, ev.SessionID, roap.ErrorRefused)
				return
			}
			if p.cfg.OnSession != nil {
				p.cfg.OnSession(s)
			}
		}
		if err := s.answer(ev.SDP); err != nil {
			p.cfg.Logf("p2p: %s: answer %s: %v", p.cfg.Self, ev.SessionID, err)
			_ = p.roap.Fail(ev.Peer, ev.SessionID, roap.ErrorBadSDP)
		}
	case roap.EventAnswer:
		if s == nil {
			return
		}
		if err := s.applyAnswer(ev.SDP); err != nil {
			p.cfg.Logf("p2p: %s: apply answer %s: %v", p.cfg.Self, ev.SessionID, err)
			_ = p.roap.Fail(ev.Peer, ev.SessionID, roap.ErrorBadSDP)
			return
		}
		_ = p.roap.Confirm(ev.Peer, ev.SessionID)
	case roap.EventCandidate:
		if s != nil {
			s.addRemoteCandidate(*ev.Candidate)
		}
	case roap.EventClosed:
		if s == nil {
			return
		}
		err := fmt.Errorf("%w", ErrSessionEnded)
		if ev.Error != "" {
			err = &SignalError{Type: ev.Error, Remote: ev.Remote}
		}
		s.teardown(err)
	}
}

// wrap returns the filexfer.Channel for a data channel; with a test
// wrapper, the same wrapper value each time, so Detach recognises it.
func (p *Peer) wrap(ch *dataChannel) filexfer.Channel {
	if p.wrapChannel == nil {
		return ch
	}
	ch.wrapOnce.Do(func() { ch.wrapped = p.wrapChannel(ch) })
	return ch.wrapped
}

// Session is one ROAP session with a peer: a peer connection (replaced on
// Reconnect) and a filexfer engine that outlives the connections, which is
// what lets a transfer resume.
type Session struct {
	p       *Peer
	peer    string
	id      string
	dialing bool
	engine  *filexfer.Engine

	// neg serialises negotiations (our offer, our answer to the peer's) so
	// that two of them never replace each other's peer connection.
	neg sync.Mutex

	attachMu     sync.Mutex // serialises data channel attaches to the engine (held across its sends; never with mu held first)
	mu           sync.Mutex
	pc           *webrtc.PeerConnection
	ch           *dataChannel
	dcClosed     chan struct{} // closed when the current connection's data channel has closed
	open         chan struct{} // closed when the current connection's data channel opens
	remoteSet    bool
	remoteCands  []webrtc.ICECandidateInit
	signalReady  bool // our OFFER/ANSWER is out, so candidates may follow
	localCands   []roap.Candidate
	reconnecting bool
	idle         roap.Timer // running while a session opened to us is down (Config.IdleTimeout)
	idleGen      int        // bumped when idle is stopped, so a timer already firing does nothing
	ended        bool
	err          error
	done         chan struct{}
}

// Peer returns the remote user id.
func (s *Session) Peer() string { return s.peer }

// ID returns the ROAP session id.
func (s *Session) ID() string { return s.id }

// Engine returns the session's file transfer engine.
func (s *Session) Engine() *filexfer.Engine { return s.engine }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (ErrSessionEnded after SHUTDOWN, a
// *SignalError after ERROR or a timeout), or nil while it lives.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// WaitOpen waits until the current connection's data channel is open.
func (s *Session) WaitOpen(ctx context.Context) error {
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconnect replaces the peer connection by a new one, renegotiated with a
// new OFFER in the same ROAP session, and waits until it is open. Transfers
// in flight resume, fetching only what is missing.
//
// If the peer is already renegotiating (its OFFER arrived first), Reconnect
// just waits for that; if both offer at once, roap's glare rule picks one
// and Reconnect returns when the surviving negotiation has opened.
func (s *Session) Reconnect(ctx context.Context) error {
	if st, ok := s.p.roap.State(s.peer, s.id); ok && st != roap.StateOpen {
		return s.WaitOpen(ctx)
	}
	err := s.offer(ctx)
	if errors.Is(err, roap.ErrSessionExists) {
		return s.WaitOpen(ctx)
	}
	return err
}

// connectionLost starts an automatic reconnect of the dialing side when
// pc, still the session's connection, has dropped.
func (s *Session) connectionLost(pc *webrtc.PeerConnection) {
	if !s.p.cfg.AutoReconnect || !s.dialing {
		return
	}
	s.mu.Lock()
	start := s.pc == pc && !s.ended && !s.reconnecting
	if start {
		s.reconnecting = true
	}
	s.mu.Unlock()
	if start {
		go s.autoReconnect(pc)
	}
}

func (s *Session) autoReconnect(lost *webrtc.PeerConnection) {
	defer func() {
		s.mu.Lock()
		s.reconnecting = false
		s.mu.Unlock()
	}()
	deadline := time.Now().Add(s.p.cfg.ReconnectFor)
	wait := 250 * time.Millisecond
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		s.mu.Lock()
		ended := s.ended
		replaced := s.pc != lost && isClosed(s.open) // someone else reconnected
		s.mu.Unlock()
		if ended || replaced {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Reconnect(ctx)
		cancel()
		if err == nil {
			return
		}
		s.p.cfg.Logf("p2p: %s: reconnect %s attempt %d: %v", s.p.cfg.Self, s.id, attempt, err)
		select {
		case <-s.done:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// markDownLocked notes that the current connection is gone, so WaitOpen
// waits for the next one; callers hold s.mu.
func (s *Session) markDownLocked() {
	select {
	case <-s.open:
		s.open = make(chan struct{})
	default:
	}
	s.armIdleLocked()
}

// armIdleLocked starts the idle timer of a session opened to us, unless it
// is running; callers hold s.mu.
func (s *Session) armIdleLocked() {
	d := s.p.cfg.IdleTimeout
	if s.dialing || d < 0 || s.ended || s.idle != nil {
		return
	}
	gen := s.idleGen
	s.idle = s.p.cfg.Clock.AfterFunc(d, func() { s.idleExpired(gen) })
}

// disarmIdleLocked stops the idle timer (the connection is open, or the
// session ended); callers hold s.mu.
func (s *Session) disarmIdleLocked() {
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	s.idleGen++
}

func (s *Session) idleExpired(gen int) {
	s.mu.Lock()
	stale := gen != s.idleGen || s.ended || isClosed(s.open)
	s.mu.Unlock()
	if stale {
		return
	}
	s.p.cfg.Logf("p2p: %s: session %s from %s idle for %v, ending it", s.p.cfg.Self, s.id, s.peer, s.p.cfg.IdleTimeout)
	s.teardown(fmt.Errorf("%w for %v", ErrIdle, s.p.cfg.IdleTimeout))
	_ = s.p.roap.Abandon(s.peer, s.id)
}

// CloseConnection closes the peer connection but keeps the session and its
// transfers, as a network failure would; Reconnect (from either side)
// resumes. It returns once the data channel has delivered its last message.
func (s *Session) CloseConnection() {
	s.mu.Lock()
	pc, ch, dcClosed := s.pc, s.ch, s.dcClosed
	s.pc, s.ch = nil, nil
	s.markDownLocked()
	s.mu.Unlock()
	if ch != nil {
		s.engine.Detach(s.p.wrap(ch))
	}
	if pc != nil {
		_ = pc.Close()
	}
	if dcClosed != nil {
		select {
		case <-dcClosed:
		case <-time.After(5 * time.Second):
		}
	}
}

// Close ends the session with SHUTDOWN and closes its connection and engine.
// What was already sent on the data channel is delivered first (up to 2 s).
func (s *Session) Close() {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch != nil {
		ch.drain(2 * time.Second)
	}
	if err := s.p.roap.Shutdown(s.peer, s.id); err != nil {
		// Not (or no longer) known to ROAP: tear down directly.
		s.teardown(fmt.Errorf("%w", ErrSessionEnded))
	}
	<-s.done
}

func (s *Session) teardown(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.err = true, err
	pc := s.pc
	s.pc, s.ch = nil, nil
	s.disarmIdleLocked()
	s.mu.Unlock()
	s.p.mu.Lock()
	if s.p.sessions[sessionKey{s.peer, s.id}] == s {
		delete(s.p.sessions, sessionKey{s.peer, s.id})
	}
	s.p.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
	s.engine.Close()
	close(s.done)
}

// newConnection replaces the session's peer connection by a fresh one. The
// offerer creates the data channel; the answerer receives it.
func (s *Session) newConnection(offerer bool) (*webrtc.PeerConnection, error) {
	s.mu.Lock()
	old, oldCh := s.pc, s.ch
	s.pc, s.ch = nil, nil
	s.mu.Unlock()
	if oldCh != nil {
		s.engine.Detach(s.p.wrap(oldCh))
	}
	if old != nil {
		_ = old.Close()
	}
	pc, err := s.p.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.p.settings.ICEServers})
	if err != nil {
		return nil, fmt.Errorf("p2p: new peer connection: %w", err)
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		_ = pc.Close()
		return nil, s.err
	}
	superseded := s.pc // only if a negotiation bypassed neg; never leak it
	s.pc, s.remoteSet, s.remoteCands, s.signalReady, s.localCands = pc, false, nil, false, nil
	s.dcClosed = make(chan struct{})
	s.markDownLocked()
	s.mu.Unlock()
	if superseded != nil {
		_ = superseded.Close()
	}

	pc.OnICECandidate(func(c *webrtc.ICECandidate) { s.onLocalCandidate(pc, c) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			s.mu.Lock()
			ch := s.ch
			current := s.pc == pc
			if current {
				s.markDownLocked()
			}
			s.mu.Unlock()
			if current && ch != nil {
				s.engine.Detach(s.p.wrap(ch))
			}
			s.connectionLost(pc)
		case webrtc.PeerConnectionStateDisconnected:
			s.connectionLost(pc)
		}
	})
	if offerer {
		ordered := true
		dc, err := pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
		if err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("p2p: create data channel: %w", err)
		}
		s.setupDataChannel(pc, dc)
	} else {
		pc.OnDataChannel(func(dc *webrtc.DataChannel) {
			if dc.Label() == DataChannelLabel {
				s.setupDataChannel(pc, dc)
			}
		})
	}
	return pc, nil
}

func (s *Session) setupDataChannel(pc *webrtc.PeerConnection, dc *webrtc.DataChannel) {
	ch := newDataChannel(dc, s.p.settings)
	s.mu.Lock()
	dcClosed := s.dcClosed
	s.mu.Unlock()
	dc.OnOpen(func() {
		s.attachMu.Lock()
		defer s.attachMu.Unlock()
		s.mu.Lock()
		if s.pc != pc || s.ended {
			s.mu.Unlock()
			return
		}
		s.ch = ch
		s.disarmIdleLocked()
		s.mu.Unlock()
		// Attach sends (the files to describe again, chunk requests), so it
		// runs without the session's lock: a blocked send must not hold up
		// the session. attachMu keeps attaches in order. If the channel
		// closed meanwhile (its OnClose detached it before this Attach),
		// undo the Attach: no other attach ran since, so ours is current.
		wrapped := s.p.wrap(ch)
		s.engine.Attach(wrapped)
		s.mu.Lock()
		current := s.ch == ch && !s.ended
		if current {
			select {
			case <-s.open:
			default:
				close(s.open)
			}
		}
		s.mu.Unlock()
		if !current {
			s.engine.Detach(wrapped)
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if m.IsString {
			return
		}
		if err := s.engine.HandleFrame(s.p.wrap(ch), m.Data); err != nil {
			s.p.cfg.Logf("p2p: %s: frame from %s: %v", s.p.cfg.Self, s.peer, err)
		}
	})
	dc.OnClose(func() {
		s.mu.Lock()
		current := s.ch == ch
		if current {
			s.ch = nil
			s.markDownLocked()
		}
		s.mu.Unlock()
		if current {
			s.connectionLost(pc)
		}
		ch.markClosed()
		s.engine.Detach(s.p.wrap(ch))
		select {
		case <-dcClosed:
		default:
			close(dcClosed)
		}
	})
}

func (s *Session) offer(ctx context.Context) error {
	if err := s.sendOffer(); err != nil {
		return err
	}
	return s.WaitOpen(ctx)
}

func (s *Session) sendOffer() error {
	s.neg.Lock()
	defer s.neg.Unlock()
	if st, ok := s.p.roap.State(s.peer, s.id); ok && st != roap.StateOpen {
		// The peer's renegotiation got in first; ours would void it.
		return fmt.Errorf("%w: %s", roap.ErrSessionExists, st)
	}
	pc, err := s.newConnection(true)
	if err != nil {
		return err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("p2p: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("p2p: set local offer: %w", err)
	}
	// The OFFER goes out without candidates, and ours follow only once the
	// ANSWER is applied (applyAnswer). Otherwise the answerer's ICE agent
	// starts checking us before our agent knows its candidates: pion then
	// files the answerer as a peer-reflexive candidate, pairs it twice, and
	// nominates only at its next 200 ms check round (about one session in
	// twenty). This way we check first, the answerer learns us from our
	// check, and its triggered check back lets us nominate at once.
	if _, err := s.p.roap.Offer(s.peer, s.id, withoutCandidates(offer.SDP)); err != nil {
		return err
	}
	return nil
}

// withoutCandidates drops the candidate lines of an SDP.
func withoutCandidates(sdp string) string {
	lines := strings.SplitAfter(sdp, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") || strings.HasPrefix(l, "a=end-of-candidates") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

func (s *Session) answer(sdp string) error {
	s.neg.Lock()
	defer s.neg.Unlock()
	pc, err := s.newConnection(false)
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	s.flushRemoteCandidates(pc)
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	if err := s.p.roap.Answer(s.peer, s.id, s.gatheredSDP(pc, ans.SDP)); err != nil {
		return err
	}
	s.flushLocalCandidates(pc)
	return nil
}

// gatheredSDP waits up to Settings.GatherWait for ICE gathering to finish
// and returns the local description with the candidates found so far, or
// sdp. Candidates in the SDP are known to the peer's ICE agent when it
// starts; trickled ones that arrive just after its first check round wait
// for the next one, 200 ms later in pion (about one session in ten on
// loopback). Host candidates take a few milliseconds; slower ones (STUN,
// TURN) still trickle after the wait.
func (s *Session) gatheredSDP(pc *webrtc.PeerConnection, sdp string) string {
	if s.p.settings.GatherWait <= 0 {
		return sdp
	}
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-time.After(s.p.settings.GatherWait):
	}
	if d := pc.LocalDescription(); d != nil {
		return d.SDP
	}
	return sdp
}

func (s *Session) applyAnswer(sdp string) error {
	s.mu.Lock()
	pc := s.pc
	s.mu.Unlock()
	if pc == nil {
		return errors.New("no peer connection")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return err
	}
	s.flushRemoteCandidates(pc)
	s.flushLocalCandidates(pc) // held back since the OFFER (see sendOffer)
	return nil
}

// flushRemoteCandidates marks the remote description applied and adds the
// candidates that arrived before it.
func (s *Session) flushRemoteCandidates(pc *webrtc.PeerConnection) {
	for _, c := range release(s, pc, &s.remoteSet, &s.remoteCands) {
		if err := pc.AddICECandidate(c); err != nil {
			s.p.cfg.Logf("p2p: %s: add candidate: %v", s.p.cfg.Self, err)
		}
	}
}

func (s *Session) addRemoteCandidate(c roap.Candidate) {
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	s.mu.Lock()
	pc := s.pc
	if pc == nil || !s.remoteSet {
		s.remoteCands = append(s.remoteCands, init)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err := pc.AddICECandidate(init); err != nil {
		s.p.cfg.Logf("p2p: %s: add candidate: %v", s.p.cfg.Self, err)
	}
}

// onLocalCandidate trickles a gathered candidate, holding it back until
// flushLocalCandidates: as the answerer, until our ANSWER is out (pion starts
// gathering before we send it); as the offerer, until the peer's ANSWER is
// applied (see sendOffer).
func (s *Session) onLocalCandidate(pc *webrtc.PeerConnection, c *webrtc.ICECandidate) {
	rc := roap.Candidate{} // nil: gathering finished, send end-of-candidates
	if c != nil {
		init := c.ToJSON()
		rc = roap.Candidate{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment}
	}
	s.mu.Lock()
	if s.pc != pc {
		s.mu.Unlock()
		return
	}
	if !s.signalReady {
		s.localCands = append(s.localCands, rc)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	_ = s.p.roap.Candidate(s.peer, s.id, rc)
}

func (s *Session) flushLocalCandidates(pc *webrtc.PeerConnection) {
	for _, c := range release(s, pc, &s.signalReady, &s.localCands) {
		_ = s.p.roap.Candidate(s.peer, s.id, c)
	}
}

// release, under s.mu and only while pc is still the session's connection,
// sets *ready and hands over the candidates *held kept back until then (none
// when pc has been replaced).
func release[T any](s *Session, pc *webrtc.PeerConnection, ready *bool, held *[]T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != pc {
		return nil
	}
	*ready = true
	cands := *held
	*held = nil
	return cands
}
