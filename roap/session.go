package roap

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is where a session is in the offer/answer exchange.
type State int

// Session states. A session that has reached StateOpen can be renegotiated
// (a new OFFER with the same sessionID, e.g. to resume after the connection
// dropped); it then walks the offer states again.
const (
	StateOfferSent      State = iota + 1 // we sent OFFER, waiting for ANSWER (OfferTimeout)
	StateOfferReceived                   // we got OFFER, our ANSWER is pending
	StateAnswerSent                      // we sent ANSWER, waiting for OK (AnswerTimeout)
	StateAnswerReceived                  // we got ANSWER, our OK is pending
	StateOpen                            // negotiated
	StateClosed                          // SHUTDOWN, ERROR or timeout; final
)

var stateNames = [...]string{"", "offer-sent", "offer-received", "answer-sent", "answer-received", "open", "closed"}

func (s State) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Errors returned by Manager methods (wrapped, test with errors.Is).
var (
	ErrUnknownSession = errors.New("roap: unknown session")
	ErrWrongState     = errors.New("roap: message not valid in this session state")
	ErrNotForMe       = errors.New("roap: message addressed to another user")
	ErrSessionExists  = errors.New("roap: session already negotiating")
)

// EventKind says what happened to a session.
type EventKind int

// Events delivered to Config.OnEvent.
const (
	// EventOffer: the peer sent an OFFER (a new session, a renegotiation, or
	// the winning side of glare; Rollback is then true and our own pending
	// offer is void). Apply Event.SDP and call Answer, or Fail/Reject.
	EventOffer EventKind = iota + 1
	// EventAnswer: the peer answered our OFFER. Apply Event.SDP and call
	// Confirm (sends OK), or Fail with ErrorBadSDP.
	EventAnswer
	// EventOpen: the peer confirmed our ANSWER with OK.
	EventOpen
	// EventCandidate: the peer trickled Event.Candidate.
	EventCandidate
	// EventClosed: the session is over; Event.Error is "" after SHUTDOWN.
	EventClosed
)

func (k EventKind) String() string {
	switch k {
	case EventOffer:
		return "offer"
	case EventAnswer:
		return "answer"
	case EventOpen:
		return "open"
	case EventCandidate:
		return "candidate"
	case EventClosed:
		return "closed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one session event.
type Event struct {
	Kind      EventKind
	Peer      string
	SessionID string
	State     State // the session's state after the event
	SDP       string
	Candidate *Candidate
	Error     ErrorType // EventClosed: why; "" for a clean SHUTDOWN
	Remote    bool      // EventClosed: the peer (or the server) ended it
	Rollback  bool      // EventOffer: our own pending offer lost glare and is discarded
}

// Config configures a Manager.
type Config struct {
	// Self is the local user id; inbound messages must be addressed to it.
	Self string
	// Send transmits a message to msg.To. It is called with the Manager's
	// lock held, which keeps messages in order; it must not call back into
	// the Manager, and must not deliver to the peer's Manager synchronously.
	Send func(Message) error
	// OnEvent receives session events. It is called without the lock held:
	// from Handle's goroutine for inbound messages, from the method's for
	// local actions, and from a timer goroutine for timeouts.
	OnEvent func(Event)
	// Clock defaults to SystemClock.
	Clock Clock
	// OfferTimeout bounds the wait for an ANSWER (default 30s): then the
	// session ends with ERROR TIMEOUT, sent to the peer too.
	OfferTimeout time.Duration
	// AnswerTimeout bounds the wait for OK after our ANSWER (default 10s).
	AnswerTimeout time.Duration
}

// Manager runs the ROAP state machine for every session of one user: any
// number of sessions per peer, keyed by (peer, sessionID).
//
// Glare: if an OFFER arrives for a session for which we have an OFFER
// outstanding, the offer of the user whose id sorts lower (byte-wise) wins.
// The winner ignores the peer's OFFER and keeps waiting for its ANSWER; the
// loser discards its own offer and handles the peer's like any other
// (EventOffer with Rollback set). Both sides apply the same rule to the same
// two ids, so exactly one offer survives without another round trip. New
// sessions use fresh random ids, so glare only arises when both sides
// renegotiate (resume) the same session at once.
type Manager struct {
	cfg      Config
	mu       sync.Mutex
	sessions map[sessionKey]*session
}

type sessionKey struct{ peer, id string }

type session struct {
	key     sessionKey
	state   State
	offerer bool // we made the current offer
	timer   Timer
	gen     int // bumps on each state change, so a stale timer does nothing
}

// NewManager returns a Manager; cfg.Self and cfg.Send are required.
func NewManager(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.OfferTimeout <= 0 {
		cfg.OfferTimeout = 30 * time.Second
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 10 * time.Second
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	return &Manager{cfg: cfg, sessions: make(map[sessionKey]*session)}
}

// NewSessionID returns a random session id (16 bytes, hex).
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// State returns the state of a session, or false if it does not exist
// (never existed, or closed and forgotten).
func (m *Manager) State(peer, sessionID string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[sessionKey{peer, sessionID}]
	if !ok {
		return 0, false
	}
	return s.state, true
}

// Len returns the number of live sessions.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

func (m *Manager) msg(t Type, k sessionKey) Message {
	return Message{Type: t, From: m.cfg.Self, To: k.peer, SessionID: k.id}
}

// send validates and sends; callers hold m.mu.
func (m *Manager) send(msg Message) error {
	if err := msg.Validate(); err != nil {
		return err
	}
	if err := m.cfg.Send(msg); err != nil {
		return fmt.Errorf("roap: send %s to %s: %w", msg.Type, msg.To, err)
	}
	return nil
}

// setState moves s and (re)arms its timer; callers hold m.mu.
func (m *Manager) setState(s *session, st State) {
	s.state = st
	s.gen++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	var d time.Duration
	switch st {
	case StateOfferSent:
		d = m.cfg.OfferTimeout
	case StateAnswerSent:
		d = m.cfg.AnswerTimeout
	default:
		return
	}
	gen := s.gen
	s.timer = m.cfg.Clock.AfterFunc(d, func() { m.timeout(s, gen) })
}

func (m *Manager) timeout(s *session, gen int) {
	m.mu.Lock()
	if s.gen != gen || m.sessions[s.key] != s {
		m.mu.Unlock()
		return
	}
	msg := m.msg(TypeError, s.key)
	msg.ErrorType = ErrorTimeout
	_ = m.send(msg) // best effort: the peer may be gone, which is why we time out
	ev := m.closeLocked(s, ErrorTimeout, false)
	m.mu.Unlock()
	m.cfg.OnEvent(ev)
}

// closeLocked ends s; callers hold m.mu and deliver the returned event.
func (m *Manager) closeLocked(s *session, et ErrorType, remote bool) Event {
	m.setState(s, StateClosed)
	delete(m.sessions, s.key)
	return Event{Kind: EventClosed, Peer: s.key.peer, SessionID: s.key.id, State: StateClosed, Error: et, Remote: remote}
}

// Offer sends an OFFER. With sessionID "" it opens a new session with a
// random id; with the id of an open session it renegotiates it (resume).
// It returns the session id.
func (m *Manager) Offer(peer, sessionID, sdp string) (string, error) {
	if sessionID == "" {
		sessionID = NewSessionID()
	}
	k := sessionKey{peer, sessionID}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[k]
	if ok && s.state != StateOpen {
		return "", fmt.Errorf("%w: %s with %s is %s", ErrSessionExists, sessionID, peer, s.state)
	}
	msg := m.msg(TypeOffer, k)
	msg.SDP = sdp
	if err := m.send(msg); err != nil {
		return "", err
	}
	if !ok {
		s = &session{key: k}
		m.sessions[k] = s
	}
	s.offerer = true
	m.setState(s, StateOfferSent)
	return sessionID, nil
}

// Answer sends the ANSWER to an OFFER reported by EventOffer.
func (m *Manager) Answer(peer, sessionID, sdp string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(peer, sessionID, StateOfferReceived)
	if err != nil {
		return err
	}
	msg := m.msg(TypeAnswer, s.key)
	msg.SDP = sdp
	if err := m.send(msg); err != nil {
		return err
	}
	m.setState(s, StateAnswerSent)
	return nil
}

// Confirm sends OK for an ANSWER reported by EventAnswer; the session is open.
func (m *Manager) Confirm(peer, sessionID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(peer, sessionID, StateAnswerReceived)
	if err != nil {
		return err
	}
	if err := m.send(m.msg(TypeOK, s.key)); err != nil {
		return err
	}
	m.setState(s, StateOpen)
	return nil
}

// Candidate trickles one local ICE candidate to the peer.
func (m *Manager) Candidate(peer, sessionID string, c Candidate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(peer, sessionID, 0)
	if err != nil {
		return err
	}
	msg := m.msg(TypeCandidate, s.key)
	msg.Candidate = &c
	return m.send(msg)
}

// Shutdown ends a session with SHUTDOWN; OnEvent gets EventClosed.
func (m *Manager) Shutdown(peer, sessionID string) error {
	return m.end(peer, sessionID, "")
}

// Fail ends a session with ERROR et (e.g. ErrorRefused, ErrorBadSDP).
func (m *Manager) Fail(peer, sessionID string, et ErrorType) error {
	if et == "" {
		et = ErrorFailed
	}
	return m.end(peer, sessionID, et)
}

func (m *Manager) end(peer, sessionID string, et ErrorType) error {
	m.mu.Lock()
	s, err := m.get(peer, sessionID, 0)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	msg := m.msg(TypeShutdown, s.key)
	if et != "" {
		msg.Type, msg.ErrorType = TypeError, et
	}
	sendErr := m.send(msg)
	ev := m.closeLocked(s, et, false)
	m.mu.Unlock()
	m.cfg.OnEvent(ev)
	return sendErr
}

// Abandon ends a session locally and tells the peer nothing; OnEvent gets
// EventClosed. A callee device gives up this way on a session whose
// connection died: it may be a device that lost the multi-device race, and
// its SHUTDOWN or ERROR would end the session another device won.
func (m *Manager) Abandon(peer, sessionID string) error {
	m.mu.Lock()
	s, err := m.get(peer, sessionID, 0)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	ev := m.closeLocked(s, "", false)
	m.mu.Unlock()
	m.cfg.OnEvent(ev)
	return nil
}

// Close shuts down every session (SHUTDOWN to each peer).
func (m *Manager) Close() {
	m.mu.Lock()
	keys := make([]sessionKey, 0, len(m.sessions))
	for k := range m.sessions {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	for _, k := range keys {
		_ = m.Shutdown(k.peer, k.id)
	}
}

// get finds a live session, optionally requiring a state; callers hold m.mu.
func (m *Manager) get(peer, id string, want State) (*session, error) {
	s, ok := m.sessions[sessionKey{peer, id}]
	if !ok {
		return nil, fmt.Errorf("%w: %s with %s", ErrUnknownSession, id, peer)
	}
	if want != 0 && s.state != want {
		return nil, fmt.Errorf("%w: %s with %s is %s, want %s", ErrWrongState, id, peer, s.state, want)
	}
	return s, nil
}

// Handle processes one inbound message (already decoded and validated).
// Messages that do not fit the session's state are dropped with an error
// (ErrWrongState, ErrUnknownSession) and change nothing; callers typically
// log them. Events are delivered before Handle returns.
func (m *Manager) Handle(msg Message) error {
	if msg.To != m.cfg.Self {
		return fmt.Errorf("%w: to %q, I am %q", ErrNotForMe, msg.To, m.cfg.Self)
	}
	k := sessionKey{msg.From, msg.SessionID}
	ev := Event{Peer: msg.From, SessionID: msg.SessionID}
	m.mu.Lock()
	s, ok := m.sessions[k]
	var err error
	switch msg.Type {
	case TypeOffer:
		switch {
		case !ok:
			s = &session{key: k}
			m.sessions[k] = s
		case s.state == StateOpen:
		case s.state == StateOfferSent && m.cfg.Self < msg.From:
			// Glare, and we win: the peer will discard its offer and answer ours.
			m.mu.Unlock()
			return nil
		case s.state == StateOfferSent:
			ev.Rollback = true // glare, and we lose
		default:
			err = fmt.Errorf("%w: OFFER in %s", ErrWrongState, s.state)
		}
		if err == nil {
			s.offerer = false
			m.setState(s, StateOfferReceived)
			ev.Kind, ev.SDP = EventOffer, msg.SDP
		}
	case TypeAnswer:
		if err = m.check(s, ok, msg, StateOfferSent); err == nil {
			m.setState(s, StateAnswerReceived)
			ev.Kind, ev.SDP = EventAnswer, msg.SDP
		}
	case TypeOK:
		if err = m.check(s, ok, msg, StateAnswerSent); err == nil {
			m.setState(s, StateOpen)
			ev.Kind = EventOpen
		}
	case TypeCandidate:
		if err = m.check(s, ok, msg, 0); err == nil {
			ev.Kind, ev.Candidate = EventCandidate, msg.Candidate
		}
	case TypeShutdown, TypeError:
		if err = m.check(s, ok, msg, 0); err == nil {
			ev = m.closeLocked(s, msg.ErrorType, true)
		}
	default:
		err = fmt.Errorf("%w: %q", ErrUnknownType, string(msg.Type))
	}
	if err == nil {
		ev.State = s.state
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.cfg.OnEvent(ev)
	return nil
}

func (m *Manager) check(s *session, ok bool, msg Message, want State) error {
	if !ok {
		return fmt.Errorf("%w: %s %s from %s", ErrUnknownSession, msg.Type, msg.SessionID, msg.From)
	}
	if want != 0 && s.state != want {
		return fmt.Errorf("%w: %s in %s", ErrWrongState, msg.Type, s.state)
	}
	return nil
}
