package im

import (
	"errors"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
)

// refs checks what a draft refers to in conv before it is stored: a
// reply_to must name a message of conv; an edit, retract or reaction
// (docs/protocol.md, "Replies, edits, retractions, reactions") must name a
// message of conv that is not itself an annotation and not retracted, and
// then:
//
//   - edit: only its sender, and only of a text message;
//   - retract: its sender, or the group's owner (owner "" in a DM);
//   - reaction: anyone who may publish here (the publish policy already
//     decided that the caller may read the conversation).
//
// A refusal stores and delivers nothing.
func (h *Service) refs(user string, conv history.ConvID, d envelope.Draft, owner string) *imerr.Error {
	if d.ReplyTo != "" {
		if _, e := h.target(conv, d.ReplyTo, "reply_to"); e != nil {
			return e
		}
	}
	if !envelope.IsAnnotation(d.Type) {
		return nil
	}
	m, e := h.target(conv, d.Ref, "ref")
	if e != nil {
		return e
	}
	if envelope.IsAnnotation(m.Type) {
		return imerr.New(imerr.Invalid, "ref %s is itself a %s, not a message", d.Ref, m.Type)
	}
	if m.Retracted {
		return imerr.New(imerr.Conflict, "message %s was retracted", d.Ref)
	}
	switch d.Type {
	case envelope.TypeEdit:
		if m.From != user {
			return imerr.New(imerr.Forbidden, "only its sender may edit message %s", d.Ref)
		}
		if m.Type != "text" {
			return imerr.New(imerr.Invalid, "only text messages can be edited (%s is %q)", d.Ref, m.Type)
		}
	case envelope.TypeRetract:
		if m.From != user && (owner == "" || owner != user) {
			return imerr.New(imerr.Forbidden, "only its sender or the group's owner may retract message %s", d.Ref)
		}
	}
	return nil
}

// target is the message id names in conv.
func (h *Service) target(conv history.ConvID, id, field string) (envelope.Message, *imerr.Error) {
	ctx, cancel := storeContext()
	defer cancel()
	m, err := h.d.History.Lookup(ctx, conv, id)
	if errors.Is(err, history.ErrNotFound) {
		return m, imerr.New(imerr.NotFound, "%s %s: no such message in this conversation", field, id)
	}
	if err != nil {
		h.d.Log.Error("history lookup failed", "conv", conv, "error", err)
		return m, imerr.New(imerr.Internal, "message lookup failed; retry")
	}
	return m, nil
}
