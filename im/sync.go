package im

import (
	"context"
	"errors"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Sync is one read: every transport's catch-up (HTTP GET /sync, MQTT
// im/sync/{me}, SSE and long-poll) resolves its cursor with Cursor and reads
// with Sync, so a cursor means the same thing everywhere and a cursor of
// another epoch is always the typed imerr.Reset.

// errReset is the refusal of a cursor from another store epoch.
func errReset() *imerr.Error {
	return imerr.New(imerr.Reset, "cursor is from another store epoch: drop the local cache and sync from the start")
}

// Cursor resolves since for user: "" is the start of the feed, "now" its
// current end, anything else a cursor of this store's epoch.
func (h *Service) Cursor(ctx context.Context, user, since string) (history.Cursor, *imerr.Error) {
	if since == "now" {
		cur, err := h.d.History.Head(ctx, user)
		if err != nil {
			h.d.Log.Error("feed head failed", "user", user, "error", err)
			return cur, imerr.New(imerr.Internal, "sync failed; retry")
		}
		return cur, nil
	}
	cur, err := history.ParseCursor(since)
	if err != nil {
		return cur, imerr.New(imerr.Invalid, "malformed cursor")
	}
	if since != "" && cur.Epoch != h.d.History.Epoch() {
		return cur, errReset()
	}
	return cur, nil
}

// Sync returns up to limit messages of user's feed after cur, oldest first.
func (h *Service) Sync(ctx context.Context, user string, cur history.Cursor, limit int) (history.SyncPage, *imerr.Error) {
	page, err := h.d.History.Sync(ctx, user, cur, limit)
	if errors.Is(err, history.ErrCursorEpoch) {
		return page, errReset()
	}
	if err != nil {
		h.d.Log.Error("sync failed", "user", user, "error", err)
		return page, imerr.New(imerr.Internal, "sync failed; retry")
	}
	if page.Messages == nil {
		page.Messages = []envelope.Message{}
	}
	return page, nil
}

// maxSyncReply keeps a sync reply under the broker's packet size limit.
const maxSyncReply = 192 << 10

// sync answers a sync request over MQTT on im/u/{me}/sync.
func (h *Service) sync(r Request) *imerr.Error {
	req, e := envelope.ParseSyncRequest(r.Payload)
	if e != nil {
		return e
	}
	ctx, cancel := storeContext()
	defer cancel()
	cur, e := h.Cursor(ctx, r.User, req.Since)
	limit := req.Limit
	if limit == 0 {
		limit = 100
	}
	reply := topic.Topic{Kind: topic.SyncReply, Owner: r.User}.String()
	for e == nil {
		var page history.SyncPage
		if page, e = h.Sync(ctx, r.User, cur, limit); e != nil {
			break
		}
		out := envelope.Marshal(envelope.SyncReply{ID: req.ID, Messages: page.Messages, Cursor: page.Next.String(), More: page.More})
		if len(out) > maxSyncReply && limit > 1 {
			limit /= 2 // large bodies: fewer per reply, the client asks again
			continue
		}
		h.d.Metrics.MessagesIn.WithLabelValues("sync").Inc()
		h.publish("sync", r.User, reply, out, false, 1)
		return nil
	}
	if e.Code == imerr.Reset {
		// MQTT's form of the reset: a reply that says so (docs/protocol.md).
		h.publish("sync", r.User, reply, envelope.Marshal(envelope.SyncReply{ID: req.ID, Messages: []envelope.Message{}, Reset: true}), false, 1)
		return nil
	}
	return e
}
