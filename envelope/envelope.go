// Package envelope is the one codec for the JSON payloads of the im/
// namespace: what clients publish (drafts, receipts, typing, presence) and
// what the server delivers (stamped messages and error notices).
package envelope

import (
	"bytes"
	"encoding/json"
	"regexp"
	"unicode/utf8"

	"github.com/mqim/mqim/imerr"
)

// Message is a stamped chat message, exactly as delivered over MQTT, stored in
// history and returned by the HTTP API.
type Message struct {
	ID    string          `json:"id"`
	Seq   uint64          `json:"seq"`
	TS    int64           `json:"ts"`
	From  string          `json:"from"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	Type  string          `json:"type"`
	Body  string          `json:"body"`
	CID   string          `json:"cid,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	// ReplyTo is the id of the message of the same conversation this one
	// answers (checked by the server).
	ReplyTo string `json:"reply_to,omitempty"`
	// Ref is the id of the message an edit, retract or reaction is about.
	Ref string `json:"ref,omitempty"`
	// Edited, Retracted and Reactions are the state annotations leave on
	// the message they are about, as history pages and search return it:
	// the time of its latest edit (Body is then the latest), retracted
	// (Body and Meta then gone), and who reacted with what.
	Edited    int64               `json:"edited,omitempty"`
	Retracted bool                `json:"retracted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"`
}

// The message types that annotate another message (Ref) rather than say
// something of their own.
const (
	TypeEdit     = "edit"
	TypeRetract  = "retract"
	TypeReaction = "reaction"
)

// IsAnnotation reports whether typ is one of the annotating types.
func IsAnnotation(typ string) bool {
	return typ == TypeEdit || typ == TypeRetract || typ == TypeReaction
}

// plainMessage is Message without its MarshalJSON.
type plainMessage Message

// MarshalJSON encodes m; a retracted message has no body at all.
func (m Message) MarshalJSON() ([]byte, error) {
	if !m.Retracted {
		return json.Marshal(plainMessage(m))
	}
	return json.Marshal(struct {
		plainMessage
		Body string `json:"body,omitempty"`
	}{plainMessage: plainMessage(m)})
}

// Draft is what a client asks to send, before the server stamps it.
type Draft struct {
	CID     string
	Type    string
	Body    string
	Meta    json.RawMessage
	ReplyTo string
	Ref     string
}

// Limits bound what ParseDraft accepts.
type Limits struct {
	BodyBytes int // maximum body size in bytes
}

// MaxMetaBytes bounds the optional meta object.
const MaxMetaBytes = 4096

var (
	cidRE  = regexp.MustCompile(`^[\x21-\x7e]{1,64}$`)
	typeRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,31}$`)
	// idRE is the form of a stamped message id ("{ts:12 hex}-{n:6 hex}").
	idRE = regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-f]{6}$`)
)

// ValidID reports whether s has the form of a stamped message id.
func ValidID(s string) bool { return idRE.MatchString(s) }

type wireDraft struct {
	CID     *string         `json:"cid"`
	Type    *string         `json:"type"`
	Body    *string         `json:"body"`
	Meta    json.RawMessage `json:"meta"`
	ReplyTo *string         `json:"reply_to"`
	Ref     *string         `json:"ref"`
}

// ParseDraft decodes a client payload: a JSON object with cid/type/body/meta,
// or any non-JSON UTF-8 text, taken as a text body. Client-supplied from, id,
// seq and ts are ignored: the server stamps those.
func ParseDraft(payload []byte, lim Limits) (Draft, *imerr.Error) {
	if !utf8.Valid(payload) {
		return Draft{}, imerr.New(imerr.Invalid, "payload is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 {
		return Draft{}, imerr.New(imerr.Invalid, "empty message")
	}
	if trimmed[0] != '{' {
		// Plain text: `mosquitto_pub -m hello` must just work.
		if len(payload) > lim.BodyBytes {
			return Draft{}, imerr.New(imerr.TooLarge, "body is %d bytes, limit %d", len(payload), lim.BodyBytes)
		}
		return Draft{Type: "text", Body: string(payload)}, nil
	}
	var w wireDraft
	if err := json.Unmarshal(trimmed, &w); err != nil {
		return Draft{}, imerr.New(imerr.Invalid, "malformed JSON: %v", err)
	}
	d := Draft{Type: "text"}
	if w.CID != nil {
		if !cidRE.MatchString(*w.CID) {
			return Draft{}, imerr.New(imerr.Invalid, "cid must be 1-64 printable ASCII characters")
		}
		d.CID = *w.CID
	}
	if w.Type != nil {
		if !typeRE.MatchString(*w.Type) {
			return Draft{}, imerr.New(imerr.Invalid, "type must match %s", typeRE)
		}
		d.Type = *w.Type
	}
	if IsAnnotation(d.Type) {
		return annotation(d, w, lim)
	}
	if w.Ref != nil {
		return Draft{}, imerr.New(imerr.Invalid, "ref is only for types edit, retract and reaction")
	}
	if w.ReplyTo != nil {
		if !ValidID(*w.ReplyTo) {
			return Draft{}, imerr.New(imerr.Invalid, "reply_to must be a message id")
		}
		d.ReplyTo = *w.ReplyTo
	}
	if w.Body == nil {
		return Draft{}, imerr.New(imerr.Invalid, "missing string field body")
	}
	if len(*w.Body) > lim.BodyBytes {
		return Draft{}, imerr.New(imerr.TooLarge, "body is %d bytes, limit %d", len(*w.Body), lim.BodyBytes)
	}
	d.Body = *w.Body
	if len(w.Meta) > 0 && !bytes.Equal(w.Meta, []byte("null")) {
		if len(w.Meta) > MaxMetaBytes {
			return Draft{}, imerr.New(imerr.TooLarge, "meta is %d bytes, limit %d", len(w.Meta), MaxMetaBytes)
		}
		if w.Meta[0] != '{' {
			return Draft{}, imerr.New(imerr.Invalid, "meta must be a JSON object")
		}
		d.Meta = append(json.RawMessage(nil), w.Meta...)
	}
	if d.Body == "" && d.Meta == nil {
		return Draft{}, imerr.New(imerr.Invalid, "empty message")
	}
	return d, nil
}

// CIDOf is the cid of a client payload, if it has a valid one, whatever
// else is wrong with it: a refusal's notice names the publish it refuses.
func CIDOf(payload []byte) string {
	var w struct {
		CID string `json:"cid"`
	}
	if p := bytes.TrimSpace(payload); len(p) > 0 && p[0] == '{' && json.Unmarshal(p, &w) == nil && cidRE.MatchString(w.CID) {
		return w.CID
	}
	return ""
}

// annotation checks an edit, retract or reaction: a ref, and for an edit
// a new non-empty body, for a reaction one emoji or "" (remove mine), for a
// retract no body; none of them takes meta or reply_to.
func annotation(d Draft, w wireDraft, lim Limits) (Draft, *imerr.Error) {
	if w.Ref == nil || !ValidID(*w.Ref) {
		return Draft{}, imerr.New(imerr.Invalid, "%s needs ref, the id of the message it is about", d.Type)
	}
	d.Ref = *w.Ref
	if w.ReplyTo != nil || (len(w.Meta) > 0 && !bytes.Equal(w.Meta, []byte("null"))) {
		return Draft{}, imerr.New(imerr.Invalid, "%s takes no reply_to or meta", d.Type)
	}
	body := ""
	if w.Body != nil {
		body = *w.Body
	}
	switch d.Type {
	case TypeEdit:
		if body == "" {
			return Draft{}, imerr.New(imerr.Invalid, "edit needs a non-empty body, the new text")
		}
		if len(body) > lim.BodyBytes {
			return Draft{}, imerr.New(imerr.TooLarge, "body is %d bytes, limit %d", len(body), lim.BodyBytes)
		}
	case TypeRetract:
		if body != "" {
			return Draft{}, imerr.New(imerr.Invalid, "retract takes no body")
		}
	case TypeReaction:
		if body != "" && !OneEmoji(body) {
			return Draft{}, imerr.New(imerr.Invalid, `reaction body must be one emoji, or "" to remove yours`)
		}
	}
	d.Body = body
	return d, nil
}

// Notice is the error notice sent on im/u/{me}/error for a refused publish.
type Notice struct {
	Code   imerr.Code `json:"code"`
	Topic  string     `json:"topic"`
	CID    string     `json:"cid,omitempty"`
	Detail string     `json:"detail"`
}

// Receipt is a delivered/read receipt, as published and as delivered.
type Receipt struct {
	Type  string `json:"type"`
	Seq   uint64 `json:"seq"`
	Group string `json:"group,omitempty"`
	From  string `json:"from,omitempty"`
	TS    int64  `json:"ts,omitempty"`
	// Peer is set on the copy of a DM read receipt sent to the reader's own
	// devices (im/u/{me}/receipt/{me}): the conversation it was read in.
	Peer string `json:"peer,omitempty"`
}

// ParseReceipt decodes and validates a client receipt.
func ParseReceipt(payload []byte) (Receipt, *imerr.Error) {
	var r Receipt
	if err := strictJSON(payload, &r); err != nil {
		return r, err
	}
	if r.Type != "delivered" && r.Type != "read" {
		return r, imerr.New(imerr.Invalid, `receipt type must be "delivered" or "read"`)
	}
	if r.Seq == 0 {
		return r, imerr.New(imerr.Invalid, "receipt seq must be a positive integer")
	}
	r.From, r.TS, r.Peer = "", 0, ""
	return r, nil
}

// Typing is a typing indicator as delivered.
type Typing struct {
	From  string `json:"from"`
	State string `json:"state"`
	TS    int64  `json:"ts"`
	Group string `json:"group,omitempty"`
}

// MaxTypingBytes bounds a typing payload.
const MaxTypingBytes = 256

// ParseTypingState returns "typing" or "idle" from a client payload; a
// missing or non-JSON payload means "typing".
func ParseTypingState(payload []byte) (string, *imerr.Error) {
	if len(payload) > MaxTypingBytes {
		return "", imerr.New(imerr.TooLarge, "typing payload over %d bytes", MaxTypingBytes)
	}
	var w struct {
		State string `json:"state"`
	}
	if len(bytes.TrimSpace(payload)) == 0 || json.Unmarshal(payload, &w) != nil || w.State == "" {
		return "typing", nil
	}
	if w.State != "typing" && w.State != "idle" {
		return "", imerr.New(imerr.Invalid, `typing state must be "typing" or "idle"`)
	}
	return w.State, nil
}

// Presence is the retained document on im/presence/{user}.
type Presence struct {
	User   string `json:"user"`
	Status string `json:"status"`
	Text   string `json:"text,omitempty"`
	TS     int64  `json:"ts"`
	Device bool   `json:"device,omitempty"` // a device account (sensor, bot), not a person
}

// MaxStatusText bounds the free-form status text.
const MaxStatusText = 140

// ParsePresence decodes a user's own presence update (status online or away).
func ParsePresence(payload []byte) (Presence, *imerr.Error) {
	var p Presence
	if err := strictJSON(payload, &p); err != nil {
		return p, err
	}
	if p.Status != "online" && p.Status != "away" {
		return p, imerr.New(imerr.Invalid, `status must be "online" or "away"`)
	}
	if len(p.Text) > MaxStatusText || !utf8.ValidString(p.Text) {
		return p, imerr.New(imerr.Invalid, "status text must be UTF-8 of at most %d bytes", MaxStatusText)
	}
	return p, nil
}

func strictJSON(payload []byte, v any) *imerr.Error {
	if !utf8.Valid(payload) {
		return imerr.New(imerr.Invalid, "payload is not valid UTF-8")
	}
	if len(payload) > 4096 {
		return imerr.New(imerr.TooLarge, "payload over 4096 bytes")
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return imerr.New(imerr.Invalid, "malformed JSON: %v", err)
	}
	return nil
}

// Marshal encodes v; the types of this package always encode.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("envelope: marshal: " + err.Error()) // unreachable for this package's types
	}
	return b
}

// SyncRequest asks for the caller's messages after a cursor, over MQTT.
type SyncRequest struct {
	ID    string `json:"id,omitempty"`
	Since string `json:"since"`
	Limit int    `json:"limit,omitempty"`
}

// SyncReply answers a SyncRequest on im/u/{me}/sync.
type SyncReply struct {
	ID       string    `json:"id,omitempty"`
	Messages []Message `json:"messages"`
	Cursor   string    `json:"cursor"`
	More     bool      `json:"more"`
	// Reset: the cursor is from another store epoch; drop local state and
	// sync again from "" (the store cannot say what lies between).
	Reset bool `json:"reset,omitempty"`
}

// ParseSyncRequest decodes a sync request; an empty payload syncs from the start.
func ParseSyncRequest(payload []byte) (SyncRequest, *imerr.Error) {
	var r SyncRequest
	if len(bytes.TrimSpace(payload)) == 0 {
		return r, nil
	}
	if err := strictJSON(payload, &r); err != nil {
		return r, err
	}
	if len(r.ID) > 64 {
		return r, imerr.New(imerr.Invalid, "id over 64 bytes")
	}
	if r.Limit < 0 || r.Limit > 500 {
		return r, imerr.New(imerr.Invalid, "limit must be 1-500")
	}
	return r, nil
}
