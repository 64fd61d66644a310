package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
)

// entry is one record of the log: an append or a read-marker move, with
// the node and request it came from (so that node can answer its caller
// once its own view applied it).
type entry struct {
	Kind string `json:"k"` // "m": append, "r": read marker
	Node string `json:"n"`
	Req  uint64 `json:"q"`

	Conv       history.ConvID    `json:"c"`
	Msg        *envelope.Message `json:"m,omitempty"`
	Recipients []string          `json:"to,omitempty"`
	IdemKey    string            `json:"ik,omitempty"`
	IdemCheck  bool              `json:"ic,omitempty"`

	User string `json:"u,omitempty"` // read marker
	Seq  uint64 `json:"s,omitempty"`
}

// Log is the history.Store of a cluster node: writes go through the
// replicated stream, reads come from the node's view (the Badger store this
// node's applier keeps in log order). Append returns once the stream holds
// the entry on a quorum and this node's view has applied it, so a caller
// reads its own writes on this node; other nodes apply it a moment later.
type Log struct {
	*history.Badger // reads: Page, Sync, Conversations, Head, Epoch

	n       *Node
	view    *history.Badger
	pending requests[*pending]

	stop    context.CancelFunc
	done    chan struct{}
	applied atomic.Uint64 // last log sequence handed to the view
	// Timeout bounds a write's wait for the log's acknowledgement (a
	// leader election takes nats-server 4-8 s).
	Timeout time.Duration
}

type pending struct {
	then     func(history.AppendResult, error)
	thenRead func(error)
}

// OpenLog starts applying the log to view from where view stopped, and
// returns the store that writes through the log.
func OpenLog(n *Node, view *history.Badger) *Log {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Log{Badger: view, n: n, view: view, stop: cancel, done: make(chan struct{}), Timeout: 10 * time.Second}
	l.applied.Store(view.LogApplied())
	f := &follower{n: n, stream: n.stream, what: logStream, applied: &l.applied, apply: l.applyBatch}
	go f.run(ctx, l.done)
	return l
}

// Close stops the applier (the view is closed by its owner).
func (l *Log) Close() error {
	l.stop()
	<-l.done
	return nil
}

// Applied is the last log sequence this node's view was handed.
func (l *Log) Applied() uint64 { return l.applied.Load() }

// Append implements history.Store.
func (l *Log) Append(ctx context.Context, req history.AppendRequest) (history.AppendResult, error) {
	type outcome struct {
		res history.AppendResult
		err error
	}
	ch := make(chan outcome, 1)
	if err := l.AppendAsync(ctx, req, func(r history.AppendResult, err error) { ch <- outcome{r, err} }); err != nil {
		return history.AppendResult{}, err
	}
	o := <-ch
	return o.res, o.err
}

// AppendAsync implements history.Store. then runs on the view's writer
// once this node applied the entry, or with an error if the log refused
// it or did not answer within Timeout (the entry may then still be in the
// log: the caller does not acknowledge, and the client's retry is
// recognised by its idempotency key).
func (l *Log) AppendAsync(ctx context.Context, req history.AppendRequest, then func(history.AppendResult, error)) error {
	msg := req.Msg
	e := entry{Kind: "m", Conv: req.Conv, Msg: &msg, Recipients: req.Recipients, IdemKey: req.IdemKey, IdemCheck: req.IdemCheck}
	return l.publish(ctx, &e, &pending{then: then}, func(err error) { then(history.AppendResult{}, err) })
}

// MarkRead implements history.Store.
func (l *Log) MarkRead(ctx context.Context, user string, conv history.ConvID, seq uint64) error {
	ch := make(chan error, 1)
	e := entry{Kind: "r", Conv: conv, User: user, Seq: seq}
	if err := l.publish(ctx, &e, &pending{thenRead: func(err error) { ch <- err }}, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// publish sends e to the log; p is answered by the applier, fail if the
// log does not take it.
func (l *Log) publish(ctx context.Context, e *entry, p *pending, fail func(error)) error {
	return l.pending.publish(l.n, logSubject, logStream, l.Timeout, p, func(req uint64) any {
		e.Node, e.Req = l.n.ID(), req
		return e
	}, fail)
}

func (l *Log) take(e *entry) *pending {
	if e.Node != l.n.ID() {
		return nil
	}
	p, _ := l.pending.take(e.Req)
	return p
}

// requests are a node's writes waiting for its own applier to reach them,
// by request id; whichever of the applier and the publisher's failure
// takes a request first answers it.
type requests[T any] struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]T
}

func (r *requests[T]) add(v T) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[uint64]T{}
	}
	r.next++
	r.m[r.next] = v
	return r.next
}

func (r *requests[T]) take(id uint64) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[id]
	delete(r.m, id)
	return v, ok
}

// publish sends the entry entry(req) makes to stream, with v waiting under
// req for the applier's answer. When the entry cannot be encoded or sent, v
// is taken back; when the stream refuses it after publish returned, fail
// runs too (unless the applier answered first).
func (r *requests[T]) publish(n *Node, subject, stream string, timeout time.Duration, v T, entry func(req uint64) any, fail func(error)) error {
	req := r.add(v)
	data, err := json.Marshal(entry(req))
	if err != nil {
		r.take(req)
		return fmt.Errorf("cluster: encode: %w", err)
	}
	err = n.publish(subject, stream, data, timeout, func(err error) {
		if _, ok := r.take(req); ok {
			fail(err)
		}
	})
	if err != nil {
		r.take(req)
	}
	return err
}

// publish sends data to stream and returns; fail runs (on another
// goroutine) if the stream refuses it or does not acknowledge it within
// timeout. The entry may then still be in the stream: the caller does not
// acknowledge its client, whose retry is recognised by its idempotency key.
func (n *Node) publish(subject, stream string, data []byte, timeout time.Duration, fail func(error)) error {
	fut, err := n.js.PublishAsync(subject, data, jetstream.WithExpectStream(stream))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	go func() {
		t := time.NewTimer(timeout)
		defer t.Stop()
		var err error
		select {
		case <-fut.Ok():
			return // the applier answers
		case err = <-fut.Err():
		case <-t.C:
			err = errors.New("no acknowledgement in time")
		}
		fail(fmt.Errorf("%w: %v", ErrUnavailable, err))
	}()
	return nil
}

// follower applies one stream, in order, to this node's database for the
// node's life. Its ordered consumer restarts from the last applied
// sequence whenever it fails or stalls (after a leader change nats-server's
// consumers can go quiet for many seconds; a watchdog that sees the stream
// ahead of what was applied recreates it).
type follower struct {
	n       *Node
	stream  jetstream.Stream
	what    string
	applied *atomic.Uint64
	// apply takes a run of entries in stream order; it advances applied
	// past what it committed, and returns an error to restart from there.
	apply func(context.Context, []streamMsg) error
}

// streamMsg is one stream entry, however it was read.
type streamMsg struct {
	seq  uint64
	ts   time.Time
	data []byte
}

func (f *follower) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		err := f.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		// Whatever stopped the consumer (a stall after a leader change,
		// a lost consumer), read what is missing by direct get, which any
		// replica answers at once, before making a new consumer.
		if cerr := f.catchUp(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if err != nil {
			f.n.log.Warn("cluster: consumer restarts", "stream", f.what, "applied", f.applied.Load(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// catchUp applies entries read one by one with direct gets until the next
// one does not exist (yet).
func (f *follower) catchUp(ctx context.Context) error {
	for n := 0; ctx.Err() == nil; n++ {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := f.stream.GetMsg(gctx, f.applied.Load()+1)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			if n > 0 {
				f.n.log.Info("cluster: caught up by direct get", "stream", f.what, "entries", n, "applied", f.applied.Load())
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := f.apply(ctx, []streamMsg{{seq: m.Sequence, ts: m.Time, data: m.Data}}); err != nil {
			return err
		}
	}
	return nil
}

func (f *follower) consume(ctx context.Context) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if next := f.applied.Load() + 1; next > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := f.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return err
	}
	defer it.Stop()
	stalled := make(chan struct{})
	go f.watch(ctx, it, stalled)
	defer close(stalled)
	msgs := make(chan streamMsg, applyBatch)
	errc := make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err == nil {
				var md *jetstream.MsgMetadata
				if md, err = m.Metadata(); err == nil {
					msgs <- streamMsg{seq: md.Sequence.Stream, ts: md.Timestamp, data: m.Data()}
					continue
				}
			}
			errc <- err
			return
		}
	}()
	batch := make([]streamMsg, 0, applyBatch)
	for {
		m, ok := <-msgs
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return <-errc
		}
		batch = append(batch[:0], m)
	fill:
		for len(batch) < applyBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := f.apply(ctx, batch); err != nil {
			return err
		}
	}
}

// watch stops it when the stream has entries past what was applied and
// nothing was applied for a while.
func (f *follower) watch(ctx context.Context, it jetstream.MessagesContext, done <-chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, quiet := f.applied.Load(), 0
	for {
		select {
		case <-ctx.Done():
			it.Stop()
			return
		case <-done:
			return
		case <-tick.C:
		}
		now := f.applied.Load()
		if now != last {
			last, quiet = now, 0
			continue
		}
		quiet++
		if quiet < 2 {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := f.stream.Info(ictx)
		cancel()
		// No answer is a stall too: the stream may be electing a leader.
		if err != nil || info.State.LastSeq > now {
			f.n.log.Warn("cluster: consumer stalled; catching up by direct get", "stream", f.what, "applied", now, "info_err", err)
			it.Stop()
			return
		}
	}
}

// inOrder reports whether m is the next entry after applied: false for
// one seen before a consumer restart, an error for a gap.
func inOrder(m streamMsg, applied uint64) (history.LogPosition, bool, error) {
	switch want := applied + 1; {
	case m.seq < want:
		return history.LogPosition{}, false, nil
	case m.seq > want:
		return history.LogPosition{}, false, fmt.Errorf("gap in the stream: got %d, want %d", m.seq, want)
	}
	return history.LogPosition{Seq: m.seq, TS: m.ts.UnixMilli()}, true, nil
}

// applyBatch hands a run of log entries to the view, in log order, and
// waits until the view committed them, so that a failed commit never
// leaves a later entry applied and an earlier one not: every view must
// hold a prefix of the log. On failure the applier resumes after what the
// view committed.
func (l *Log) applyBatch(ctx context.Context, batch []streamMsg) error {
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	fail := func(err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	for _, m := range batch {
		pos, next, err := inOrder(m, l.applied.Load())
		if err != nil {
			return err
		}
		if !next {
			continue
		}
		wg.Add(1)
		if err := l.apply(ctx, m.data, pos, func(err error) { fail(err); wg.Done() }); err != nil {
			wg.Done()
			wg.Wait()
			l.applied.Store(l.view.LogApplied())
			return err
		}
		l.applied.Store(pos.Seq)
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		l.applied.Store(l.view.LogApplied())
		return fmt.Errorf("view commit: %w", *e)
	}
	return nil
}

// applyBatch bounds how many log entries are handed to the view at once.
const applyBatch = 512

// apply hands one log entry to the view; done runs once the view committed
// it (or failed to). A malformed entry cannot be skipped (every view must
// agree), so it stops the applier loudly; this code writes none.
func (l *Log) apply(ctx context.Context, data []byte, pos history.LogPosition, done func(error)) error {
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("log entry %d: %w", pos.Seq, err)
	}
	switch e.Kind {
	case "m":
		if e.Msg == nil {
			return fmt.Errorf("log entry %d: append without a message", pos.Seq)
		}
		p := l.take(&e)
		req := history.AppendRequest{Conv: e.Conv, Msg: *e.Msg, Recipients: e.Recipients, IdemKey: e.IdemKey, IdemCheck: e.IdemCheck, Log: &pos}
		return l.view.AppendAsync(ctx, req, func(res history.AppendResult, err error) {
			if p != nil && p.then != nil {
				p.then(res, err)
			}
			done(err)
		})
	case "r":
		p := l.take(&e)
		return l.view.MarkReadAsync(ctx, e.User, e.Conv, e.Seq, pos, func(err error) {
			if p != nil && p.thenRead != nil {
				p.thenRead(err)
			}
			done(err)
		})
	default:
		return fmt.Errorf("log entry %d: unknown kind %q", pos.Seq, e.Kind)
	}
}
