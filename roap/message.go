package roap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
)

// Type is a ROAP message type (the seed paper's Table 1).
type Type string

// Message types.
const (
	TypeOffer     Type = "OFFER"     // caller -> callee: SDP offer, opens (or re-opens) a session
	TypeAnswer    Type = "ANSWER"    // callee -> caller: SDP answer
	TypeOK        Type = "OK"        // caller -> callee: the answer was applied
	TypeCandidate Type = "CANDIDATE" // either way: one trickled ICE candidate
	TypeShutdown  Type = "SHUTDOWN"  // either way: the session is over
	TypeError     Type = "ERROR"     // either way (or the server): the session failed, see ErrorType
)

// ErrorType says why a session failed. Receivers must accept values not
// listed here (any ^[A-Z][A-Z0-9_]{0,31}$) and treat them as a failure.
type ErrorType string

// Known error types.
const (
	ErrorOffline   ErrorType = "OFFLINE"    // sent by the server: the callee has no device online
	ErrorRefused   ErrorType = "REFUSED"    // the callee declined
	ErrorTimeout   ErrorType = "TIMEOUT"    // an OFFER or ANSWER was not answered in time
	ErrorBadSDP    ErrorType = "BAD_SDP"    // the SDP could not be applied
	ErrorFailed    ErrorType = "FAILED"     // ICE/DTLS/SCTP failed after negotiation
	ErrorNoSession ErrorType = "NO_SESSION" // a message named a session the receiver does not know
)

// Limits enforced by Decode and Validate.
const (
	MaxMessageSize   = 64 * 1024
	MaxSDPSize       = 48 * 1024
	MaxCandidateSize = 1024
	MaxSessionIDLen  = 64
)

// Sentinel errors; every error from Decode and Validate wraps exactly one.
// Code returns the stable code the shared test vectors and the JavaScript
// model use for each.
var (
	ErrMalformed       = errors.New("roap: malformed JSON")
	ErrTooLarge        = errors.New("roap: message too large")
	ErrUnknownField    = errors.New("roap: unknown field")
	ErrUnknownType     = errors.New("roap: unknown message type")
	ErrMissingField    = errors.New("roap: missing field")
	ErrInvalidField    = errors.New("roap: invalid field")
	ErrUnexpectedField = errors.New("roap: field not allowed for this type")
)

var errorCodes = []struct {
	err  error
	code string
}{
	{ErrMalformed, "malformed"},
	{ErrTooLarge, "too_large"},
	{ErrUnknownField, "unknown_field"},
	{ErrUnknownType, "unknown_type"},
	{ErrMissingField, "missing_field"},
	{ErrInvalidField, "invalid_field"},
	{ErrUnexpectedField, "unexpected_field"},
}

// Code returns the stable code of a decode/validation error ("malformed",
// "unknown_field", ...), or "" if err wraps none of the sentinel errors.
func Code(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// Candidate is one ICE candidate, shaped like the browser's RTCIceCandidateInit
// (what RTCIceCandidate.toJSON returns). An empty Candidate string means
// end-of-candidates.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Message is one ROAP message as carried on im/u/{to}/signal/{from}.
type Message struct {
	Type      Type       `json:"type"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	SessionID string     `json:"sessionID"`
	SDP       string     `json:"sdp,omitempty"`
	Candidate *Candidate `json:"candidate,omitempty"`
	ErrorType ErrorType  `json:"errorType,omitempty"`
}

var (
	userRe      = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)
	sessionRe   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	errorTypeRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)
)

var topKeys = map[string]bool{"type": true, "from": true, "to": true, "sessionID": true, "sdp": true, "candidate": true, "errorType": true}
var candKeys = map[string]bool{"candidate": true, "sdpMid": true, "sdpMLineIndex": true, "usernameFragment": true}

// Decode parses and validates one ROAP message. Keys are matched exactly
// (case-sensitive), unknown keys are refused, and a field a type does not
// use is refused too, so a message means exactly one thing in Go and in the
// browser. It never panics.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	obj, err := decodeObject(b)
	if err != nil {
		return m, err
	}
	for k := range obj {
		if !topKeys[k] {
			return m, fmt.Errorf("%w: %q", ErrUnknownField, k)
		}
	}
	str := func(key string, dst *string) error {
		raw, ok := obj[key]
		if !ok {
			return nil
		}
		if err := decodeString(raw, dst); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidField, key, err)
		}
		return nil
	}
	var typ, et string
	for _, f := range []struct {
		k string
		d *string
	}{{"type", &typ}, {"from", &m.From}, {"to", &m.To}, {"sessionID", &m.SessionID}, {"sdp", &m.SDP}, {"errorType", &et}} {
		if err := str(f.k, f.d); err != nil {
			return Message{}, err
		}
	}
	m.Type, m.ErrorType = Type(typ), ErrorType(et)
	if raw, ok := obj["candidate"]; ok {
		c, err := decodeCandidate(raw)
		if err != nil {
			return Message{}, err
		}
		m.Candidate = c
	}
	// A key that is present counts as present even when its value is "",
	// so `"sdp":""` on an OK is refused like any other stray field.
	if err := m.validate(func(k string) bool { _, ok := obj[k]; return ok }); err != nil {
		return Message{}, err
	}
	return m, nil
}

func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	b = bytes.TrimLeft(b, " \t\r\n") // JSON whitespace only, as JSON.parse
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return obj, nil
}

func decodeString(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, dst)
}

func decodeCandidate(raw json.RawMessage) (*Candidate, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: candidate: not an object", ErrInvalidField)
	}
	for k := range obj {
		if !candKeys[k] {
			return nil, fmt.Errorf("%w: candidate.%q", ErrUnknownField, k)
		}
	}
	c := &Candidate{}
	if v, ok := obj["candidate"]; ok {
		if err := decodeString(v, &c.Candidate); err != nil {
			return nil, fmt.Errorf("%w: candidate.candidate: %v", ErrInvalidField, err)
		}
	}
	for _, f := range []struct {
		k string
		d **string
	}{{"sdpMid", &c.SDPMid}, {"usernameFragment", &c.UsernameFragment}} {
		v, ok := obj[f.k]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if err := decodeString(v, &s); err != nil {
			return nil, fmt.Errorf("%w: candidate.%s: %v", ErrInvalidField, f.k, err)
		}
		*f.d = &s
	}
	if v, ok := obj["sdpMLineIndex"]; ok && string(v) != "null" {
		// Any JSON number with an integral value counts (1e2, 1.0), as for
		// JavaScript's Number.isInteger.
		var f float64
		if len(v) == 0 || v[0] == '"' || json.Unmarshal(v, &f) != nil || f != math.Trunc(f) || f < 0 || f > 65535 {
			return nil, fmt.Errorf("%w: candidate.sdpMLineIndex: want an integer 0..65535", ErrInvalidField)
		}
		u := uint16(f)
		c.SDPMLineIndex = &u
	}
	return c, nil
}

// Validate checks m as Decode would, for messages built in code.
func (m *Message) Validate() error {
	return m.validate(func(k string) bool {
		switch k {
		case "sdp":
			return m.SDP != ""
		case "candidate":
			return m.Candidate != nil
		case "errorType":
			return m.ErrorType != ""
		}
		return true
	})
}

func (m *Message) validate(present func(string) bool) error {
	if m.Type == "" {
		return fmt.Errorf("%w: type", ErrMissingField)
	}
	var needs string // the one optional field this type requires
	switch m.Type {
	case TypeOffer, TypeAnswer:
		needs = "sdp"
	case TypeCandidate:
		needs = "candidate"
	case TypeError:
		needs = "errorType"
	case TypeOK, TypeShutdown:
	default:
		return fmt.Errorf("%w: %q", ErrUnknownType, string(m.Type))
	}
	for _, f := range []struct{ k, v string }{{"from", m.From}, {"to", m.To}, {"sessionID", m.SessionID}} {
		if f.v == "" {
			return fmt.Errorf("%w: %s", ErrMissingField, f.k)
		}
	}
	if !userRe.MatchString(m.From) {
		return fmt.Errorf("%w: from %q is not a user id", ErrInvalidField, m.From)
	}
	if !userRe.MatchString(m.To) {
		return fmt.Errorf("%w: to %q is not a user id", ErrInvalidField, m.To)
	}
	if m.From == m.To {
		return fmt.Errorf("%w: from and to are both %q", ErrInvalidField, m.From)
	}
	if !sessionRe.MatchString(m.SessionID) {
		return fmt.Errorf("%w: sessionID must match %s", ErrInvalidField, sessionRe)
	}
	for _, k := range []string{"sdp", "candidate", "errorType"} {
		if k != needs && present(k) {
			return fmt.Errorf("%w: %s on %s", ErrUnexpectedField, k, m.Type)
		}
	}
	switch needs {
	case "sdp":
		if m.SDP == "" {
			return fmt.Errorf("%w: sdp", ErrMissingField)
		}
		if len(m.SDP) > MaxSDPSize {
			return fmt.Errorf("%w: sdp of %d bytes, limit %d", ErrInvalidField, len(m.SDP), MaxSDPSize)
		}
		if len(m.SDP) < 4 || m.SDP[:4] != "v=0\r" && m.SDP[:4] != "v=0\n" {
			return fmt.Errorf("%w: sdp does not start with v=0", ErrInvalidField)
		}
	case "candidate":
		c := m.Candidate
		if c == nil {
			return fmt.Errorf("%w: candidate", ErrMissingField)
		}
		if len(c.Candidate) > MaxCandidateSize {
			return fmt.Errorf("%w: candidate of %d bytes", ErrInvalidField, len(c.Candidate))
		}
		if c.Candidate != "" && c.SDPMid == nil && c.SDPMLineIndex == nil {
			return fmt.Errorf("%w: candidate needs sdpMid or sdpMLineIndex", ErrMissingField)
		}
		if c.SDPMid != nil && len(*c.SDPMid) > 64 || c.UsernameFragment != nil && len(*c.UsernameFragment) > 256 {
			return fmt.Errorf("%w: candidate sdpMid or usernameFragment too long", ErrInvalidField)
		}
	case "errorType":
		if m.ErrorType == "" {
			return fmt.Errorf("%w: errorType", ErrMissingField)
		}
		if !errorTypeRe.MatchString(string(m.ErrorType)) {
			return fmt.Errorf("%w: errorType %q", ErrInvalidField, m.ErrorType)
		}
	}
	return nil
}

// Encode validates m and returns its JSON form.
func (m Message) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
