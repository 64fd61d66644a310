// Package history is the durable, sequenced record of every accepted chat
// message: the source of truth that MQTT delivery, HTTP paging and sync all
// converge on.
//
// Store is the interface a clustered backend must also satisfy. Its contract:
//
//   - Durability: Append returns nil only after the message is stored per the
//     store's durability policy (the Badger store: fsync'd in a group commit
//     when SyncWrites is on). A PUBACK is sent only after that.
//   - Order: messages of one conversation get seq 1, 2, 3... with no gaps, in
//     the order their Appends commit. A reader that sees seq N of a
//     conversation also sees every seq below N.
//   - Sync: each recipient has a private feed position; a Sync from cursor C
//     returns every message appended for that user after C, oldest first,
//     with no gaps and no duplicates, however long the user was away.
//   - Idempotency: two Appends with the same IdemKey (and IdemCheck set on the
//     later one) store one message; the second reports Duplicate and returns
//     the first one's stamped message.
//   - Feed: a store announces each committed message (Appended) once, in
//     commit order, so per user in feed-position order; see fanout.
//   - Annotations: an appended edit, retract or reaction (envelope's
//     annotating types, with Ref) is a message of its own (own seq, in the
//     feeds) and, in the same commit, changes the message it refers to: an
//     edit replaces its body and sets Edited to the edit's TS, a retract
//     sets Retracted and drops body, meta and reactions, a reaction sets or
//     (empty body) removes its sender's one reaction. A retracted message
//     and the annotations themselves are never changed. Page, Sync, Lookup
//     return messages as they now are.
//   - Epoch: cursors carry the store's epoch; a cursor from another epoch is
//     refused with ErrCursorEpoch rather than silently mis-read.
package history

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mqim/mqim/envelope"
)

// Sentinel errors.
var (
	ErrCursorEpoch   = errors.New("history: cursor is from another store epoch")
	ErrCursorInvalid = errors.New("history: malformed cursor")
	ErrClosed        = errors.New("history: store closed")
	// ErrUnavailable: the store cannot take writes now (a cluster node
	// without a quorum, or while the log elects a leader); nothing was
	// acknowledged, and the write may be retried.
	ErrUnavailable = errors.New("history: store unavailable")
)

// ConvID names a conversation: "dm:{a}:{b}" with a < b, or "g:{gid}".
type ConvID string

// DM returns the conversation id of the 1:1 chat between a and b.
func DM(a, b string) ConvID {
	if b < a {
		a, b = b, a
	}
	return ConvID("dm:" + a + ":" + b)
}

// Group returns the conversation id of group gid.
func Group(gid string) ConvID { return ConvID("g:" + gid) }

// Peer returns, for a DM conversation seen by user, the other participant; for
// a group, the group id and isGroup true.
func (c ConvID) Peer(user string) (name string, isGroup bool) {
	s := string(c)
	if strings.HasPrefix(s, "g:") {
		return s[2:], true
	}
	parts := strings.SplitN(strings.TrimPrefix(s, "dm:"), ":", 2)
	if len(parts) != 2 {
		return "", false
	}
	if parts[0] == user {
		return parts[1], false
	}
	return parts[0], false
}

// AppendRequest asks the store to stamp and keep one message.
type AppendRequest struct {
	Conv ConvID
	// Msg carries from/to/group/type/body/cid/meta; the store sets ID, Seq, TS.
	Msg envelope.Message
	// Recipients are the users whose sync feed gets the message (the sender
	// included, for its other devices).
	Recipients []string
	// IdemKey identifies a publish across retries ("" for none). It is always
	// recorded; it is looked up only when IdemCheck is set.
	IdemKey   string
	IdemCheck bool
	// Log, set only by a replicated log's applier (package cluster), is
	// this append's place in that log: the store stamps the message from it
	// (TS from the log, ID from TS and the log sequence) instead of from its
	// own clock, so every node's view stamps the same message alike, and
	// records the sequence as applied in the same commit.
	Log *LogPosition
}

// LogPosition is an entry's place in a replicated log: its sequence and the
// log's timestamp (Unix milliseconds).
type LogPosition struct {
	Seq uint64
	TS  int64
}

// AppendResult is the stamped message, and whether it had been stored before.
type AppendResult struct {
	Msg       envelope.Message
	Duplicate bool
}

// Appended is one message as committed, for the fan-out: its stamped form,
// that form's JSON (envelope.Marshal of Msg), and the feed position it took
// in each recipient's feed (Positions[i] is Recipients[i]'s). Shared by
// every consumer: read-only.
type Appended struct {
	Msg        envelope.Message
	Payload    []byte
	Recipients []string
	Positions  []uint64
}

// Cursor is a position in one user's sync feed.
type Cursor struct {
	Epoch string
	Pos   uint64
}

// String encodes a cursor as "{epoch}-{pos}".
func (c Cursor) String() string { return c.Epoch + "-" + strconv.FormatUint(c.Pos, 10) }

// ParseCursor decodes a cursor; "" is the start of the feed (any epoch).
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return Cursor{}, ErrCursorInvalid
	}
	pos, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return Cursor{}, ErrCursorInvalid
	}
	return Cursor{Epoch: s[:i], Pos: pos}, nil
}

// SyncPage is one page of a user's feed.
type SyncPage struct {
	Messages []envelope.Message
	// Raw, if set, holds each message's JSON as stored (what
	// envelope.Marshal gives), for transports that relay it as is.
	Raw  [][]byte
	Next Cursor
	More bool
}

// Summary describes one conversation for the conversation list.
type Summary struct {
	Conv   ConvID
	Last   *envelope.Message
	Read   uint64
	Unread uint64
}

// Store is the history store. See the package doc for the contract.
type Store interface {
	Append(ctx context.Context, req AppendRequest) (AppendResult, error)
	// AppendAsync queues req and returns; then is called once it is
	// stored or failed (err nil: stored). Appends are committed in the
	// order they were queued, and then runs in that order, on the store's
	// writer: it must not block. A non-nil return means nothing was queued.
	AppendAsync(ctx context.Context, req AppendRequest, then func(AppendResult, error)) error
	// Page returns up to limit messages of conv with seq < before (0: from
	// the newest), newest first, and whether older ones exist.
	Page(ctx context.Context, conv ConvID, before uint64, limit int) ([]envelope.Message, bool, error)
	// Lookup returns the message of conv with id, as it now is (edits,
	// retraction and reactions applied), or an error wrapping ErrNotFound.
	Lookup(ctx context.Context, conv ConvID, id string) (envelope.Message, error)
	// Sync returns up to limit messages of user's feed after cursor.
	Sync(ctx context.Context, user string, after Cursor, limit int) (SyncPage, error)
	// MarkRead moves user's read marker in conv forward to seq (never back).
	MarkRead(ctx context.Context, user string, conv ConvID, seq uint64) error
	// Conversations lists user's conversations, most recent first.
	Conversations(ctx context.Context, user string) ([]Summary, error)
	// Head returns the cursor at the end of user's feed ("sync from now").
	Head(ctx context.Context, user string) (Cursor, error)
	// Epoch identifies this store's lifetime; cursors carry it.
	Epoch() string
	Close() error
}

// sortSummaries orders the conversation list by last activity, newest first
// (ids are time-ordered, so they break ties within a millisecond).
func sortSummaries(s []Summary) {
	key := func(x Summary) (int64, string) {
		if x.Last == nil {
			return 0, ""
		}
		return x.Last.TS, x.Last.ID
	}
	sort.SliceStable(s, func(i, j int) bool {
		ti, ii := key(s[i])
		tj, ij := key(s[j])
		if ti != tj {
			return ti > tj
		}
		return ii > ij
	})
}

func errorf(op string, conv ConvID, err error) error {
	return fmt.Errorf("history: %s %s: %w", op, conv, err)
}
