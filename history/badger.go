package history

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/kvstore"
)

// Key layout (prefixes owned by this package, see kvstore):
//
//	meta/epoch                 store epoch
//	meta/log                   last replicated-log sequence applied {seq:8}
//	m/{conv}/{seq:8}           stamped message JSON
//	i/{user}/{pos:8}           user's feed: {conv}/{seq:8}
//	uc/{user}/{conv}           user takes part in conv
//	rd/{user}/{conv}           read marker {seq:8}
//	id/{idemkey}               {conv}/{seq:8}, with a TTL
//	ml/{conv}/{id}             {seq:8}: a message by its id (Lookup)
//	j/{n:8}                    {conv}/{seq:8}: every append in commit order
//	                           (the journal a derived index follows, Changes)
const (
	idemTTL = 7 * 24 * time.Hour
	// maxBatchEntries keeps one group commit well under Badger's per-txn
	// limits (derived from the memtable size) while still amortising fsync.
	maxBatchEntries = 8000
)

func be8(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func msgKey(conv ConvID, seq uint64) []byte {
	return append([]byte("m/"+string(conv)+"/"), be8(seq)...)
}
func feedKey(user string, pos uint64) []byte { return append([]byte("i/"+user+"/"), be8(pos)...) }
func ptr(conv ConvID, seq uint64) []byte     { return append([]byte(string(conv)+"/"), be8(seq)...) }
func parsePtr(b []byte) (ConvID, uint64, bool) {
	if len(b) < 10 || b[len(b)-9] != '/' {
		return "", 0, false
	}
	return ConvID(b[:len(b)-9]), binary.BigEndian.Uint64(b[len(b)-8:]), true
}

// BadgerOptions configure the Badger store.
type BadgerOptions struct {
	Now func() time.Time
	// MaxBatch bounds how many appends share one commit.
	MaxBatch int
	// Space, if set, is checked before every commit: below its reserve the
	// whole batch fails with an error wrapping kvstore.ErrFull.
	Space *kvstore.Space
	// Committed, if set, is called by the writer after each commit with the
	// messages it stored, in commit order (see Appended): the feed the
	// fan-out delivers from. It runs before the appends' callers return and
	// must not block.
	Committed func([]Appended)
	// Epoch, if set, is the epoch a new store takes instead of a random
	// one (a cluster's: every node's view then issues cursors valid on the
	// others). A store that already has another epoch is refused.
	Epoch string
}

// ErrCorrupt reports a read that found the store inconsistent: an entry
// missing inside a range that has no gaps by construction. Badger's
// iterators end silently on a block that fails its checksum, so the gap is
// how a damaged table shows; the read fails rather than answer short.
var ErrCorrupt = errors.New("history: storage read error (damaged data)")

type op struct {
	append   *AppendRequest
	read     *readReq
	res      AppendResult
	pos      []uint64                  // feed position of each recipient
	then     func(AppendResult, error) // AppendAsync's callback, else done is closed
	thenRead func(error)               // MarkReadAsync's callback
	payload  []byte                    // the stored message's JSON
	err      error
	done     chan struct{}
	entries  int
}

type readReq struct {
	user string
	conv ConvID
	seq  uint64
	log  uint64 // replicated-log sequence, 0: none
}

// Badger is the embedded Store: one writer goroutine assigns sequences and
// commits appends in batches (group commit), so many concurrent publishers
// share one fsync and commit order equals sequence order.
type Badger struct {
	db       *badger.DB
	space    *kvstore.Space
	now      func() time.Time
	epoch    string
	maxBatch int
	ops      chan *op
	quit     chan struct{}
	onCommit func([]Appended)
	wg       sync.WaitGroup
	closed   atomic.Bool
	idSeq    atomic.Uint64
	// logApplied is the last replicated-log sequence committed.
	logApplied atomic.Uint64

	// Caches of the writer goroutine (only commit touches them, so no lock):
	// a miss reads the store within the batch's transaction, so they are
	// dropped whenever a batch fails or they pass maxCached entries.
	convSeq map[ConvID]uint64
	feedPos map[string]uint64
	inConv  map[string]bool   // user+"\x00"+conv known to have a uc/ key
	read    map[string]uint64 // read marker (rd/ key) -> its value
	journal uint64            // last j/ number assigned, 0: not read yet

	// The last seq / feed position known committed, for readers to check
	// a page against (a reader reads these before it opens its snapshot, so
	// its snapshot holds at least that much). Kept apart from the caches
	// above so that readers never wait for the writer's fsync.
	cmu      sync.RWMutex
	lastConv map[ConvID]uint64
	lastFeed map[string]uint64
	// lastJournal is the last journal number committed.
	lastJournal atomic.Uint64
}

// OpenBadger opens the history store over db and starts its writer.
func OpenBadger(db *badger.DB, o BadgerOptions) (*Badger, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	s := &Badger{db: db, space: o.Space, now: o.Now, maxBatch: o.MaxBatch, ops: make(chan *op, 4096), quit: make(chan struct{}), onCommit: o.Committed,
		convSeq: map[ConvID]uint64{}, feedPos: map[string]uint64{}, inConv: map[string]bool{}, read: map[string]uint64{},
		lastConv: map[ConvID]uint64{}, lastFeed: map[string]uint64{}}
	err := db.Update(func(txn *badger.Txn) error {
		if n, err := getU64(txn, []byte("meta/log")); err != nil {
			return err
		} else {
			s.logApplied.Store(n)
		}
		if n, err := lastUnder(txn, []byte("j/")); err != nil {
			return err
		} else {
			s.lastJournal.Store(n)
		}
		it, err := txn.Get([]byte("meta/epoch"))
		if err == nil {
			v, err := it.ValueCopy(nil)
			s.epoch = string(v)
			if o.Epoch != "" && s.epoch != o.Epoch {
				return fmt.Errorf("%w: the data holds epoch %s, the log is epoch %s", ErrForeignEpoch, s.epoch, o.Epoch)
			}
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		s.epoch = o.Epoch
		if s.epoch == "" {
			b := make([]byte, 6)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			s.epoch = hex.EncodeToString(b)
		}
		return txn.Set([]byte("meta/epoch"), []byte(s.epoch))
	})
	if err != nil {
		return nil, fmt.Errorf("history: open: %w", err)
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// Epoch implements Store.
func (s *Badger) Epoch() string { return s.epoch }

// ErrForeignEpoch refuses to open a store under an epoch other than its own
// (a data directory from another cluster, or a single node's).
var ErrForeignEpoch = errors.New("history: data directory belongs to another epoch")

// LogApplied is the last replicated-log sequence committed (0: none), the
// position a log applier resumes after.
func (s *Badger) LogApplied() uint64 { return s.logApplied.Load() }

// MarkReadAsync queues a read marker move that is entry seq of a replicated
// log (see AppendRequest.Log); then runs on the writer once it committed.
func (s *Badger) MarkReadAsync(ctx context.Context, user string, conv ConvID, seq uint64, log LogPosition, then func(error)) error {
	o := &op{read: &readReq{user: user, conv: conv, seq: seq, log: log.Seq}, entries: 2, thenRead: then}
	return s.queue(ctx, o, conv)
}

// Close stops the writer after it has committed everything queued.
func (s *Badger) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	s.wg.Wait()
	return nil
}

func (s *Badger) submit(ctx context.Context, o *op) error {
	if s.closed.Load() {
		return ErrClosed
	}
	o.done = make(chan struct{})
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the op may already
	// be committed and the caller must not report failure for a stored message.
	<-o.done
	return o.err
}

// Append implements Store.
func (s *Badger) Append(ctx context.Context, req AppendRequest) (AppendResult, error) {
	o := &op{append: &req, entries: 3 + 2*len(req.Recipients)}
	if err := s.submit(ctx, o); err != nil {
		return AppendResult{}, errorf("append", req.Conv, err)
	}
	return o.res, nil
}

// AppendAsync implements Store.
func (s *Badger) AppendAsync(ctx context.Context, req AppendRequest, then func(AppendResult, error)) error {
	o := &op{append: &req, entries: 3 + 2*len(req.Recipients), then: then}
	return s.queue(ctx, o, req.Conv)
}

// queue hands o to the writer without waiting for its commit.
func (s *Badger) queue(ctx context.Context, o *op, conv ConvID) error {
	if s.closed.Load() {
		return errorf("append", conv, ErrClosed)
	}
	select {
	case s.ops <- o:
		return nil
	case <-s.quit:
		return errorf("append", conv, ErrClosed)
	case <-ctx.Done():
		return errorf("append", conv, ctx.Err())
	}
}

// MarkRead implements Store.
func (s *Badger) MarkRead(ctx context.Context, user string, conv ConvID, seq uint64) error {
	o := &op{read: &readReq{user: user, conv: conv, seq: seq}, entries: 1}
	if err := s.submit(ctx, o); err != nil {
		return errorf("mark read", conv, err)
	}
	return nil
}

func (s *Badger) writer() {
	defer s.wg.Done()
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Drain what was queued before Close so no accepted op is lost.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		batch := s.fill([]*op{first})
		s.commit(batch)
	}
}

// fill adds what is queued to batch, up to its bounds.
func (s *Badger) fill(batch []*op) []*op {
	entries := 0
	for _, o := range batch {
		entries += o.entries
	}
	for len(batch) < s.maxBatch && entries < maxBatchEntries {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
			entries += o.entries
		default:
			return batch
		}
	}
	return batch
}

// commit applies a batch in one transaction. On failure every op in it fails
// and the sequence caches are dropped, so no seq is ever skipped or reused.
func (s *Badger) commit(batch []*op) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	// Measured before every batch: a batch must not be what fills the disk.
	err := s.space.Check()
	if err == nil {
		err = s.apply(txn, batch)
	}
	var logSeq uint64
	if err == nil {
		logSeq = lastLogSeq(batch)
		if logSeq > 0 {
			err = txn.Set([]byte("meta/log"), be8(logSeq))
		}
	}
	if err == nil {
		err = txn.Commit()
	}
	if err == nil {
		if logSeq > 0 {
			s.logApplied.Store(logSeq)
		}
		s.noteCommitted(batch)
		s.announce(batch)
	}
	if err != nil || len(s.convSeq) > maxCached || len(s.feedPos) > maxCached || len(s.inConv) > maxCached || len(s.read) > maxCached {
		s.convSeq = map[ConvID]uint64{}
		s.feedPos = map[string]uint64{}
		s.inConv = map[string]bool{}
		s.read = map[string]uint64{}
		s.journal = 0
	}
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		if o.thenRead != nil {
			var e error
			if o.err != nil {
				e = errorf("mark read", o.read.conv, o.err)
			}
			o.thenRead(e)
			continue
		}
		if o.then != nil {
			var e error
			if o.err != nil {
				e = errorf("append", o.append.Conv, o.err)
			}
			o.then(o.res, e)
			continue
		}
		close(o.done)
	}
}

// maxCached bounds each writer cache (~100 bytes an entry): past it the
// cache starts again empty, between batches.
const maxCached = 1 << 16

// noteCommitted records the batch's last seqs and feed positions as
// committed (called by the writer right after the commit, so the caches
// hold exactly what committed).
func (s *Badger) noteCommitted(batch []*op) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.journal > 0 {
		s.lastJournal.Store(s.journal)
	}
	for _, o := range batch {
		if o.append == nil || o.res.Duplicate {
			continue
		}
		s.lastConv[o.append.Conv] = s.convSeq[o.append.Conv]
		for _, u := range o.append.Recipients {
			s.lastFeed[u] = s.feedPos[u]
		}
	}
}

// announce hands the batch's new messages to the Committed callback.
func (s *Badger) announce(batch []*op) {
	if s.onCommit == nil {
		return
	}
	out := make([]Appended, 0, len(batch))
	for _, o := range batch {
		if o.append == nil || o.res.Duplicate {
			continue
		}
		out = append(out, Appended{Msg: o.res.Msg, Payload: o.payload, Recipients: o.append.Recipients, Positions: o.pos})
	}
	if len(out) > 0 {
		s.onCommit(out)
	}
}

func (s *Badger) committed(conv ConvID, user string) (seq, pos uint64) {
	s.cmu.RLock()
	defer s.cmu.RUnlock()
	return s.lastConv[conv], s.lastFeed[user]
}

// lastLogSeq is the highest replicated-log sequence among batch's ops.
func lastLogSeq(batch []*op) uint64 {
	var n uint64
	for _, o := range batch {
		switch {
		case o.append != nil && o.append.Log != nil:
			n = max(n, o.append.Log.Seq)
		case o.read != nil:
			n = max(n, o.read.log)
		}
	}
	return n
}

func (s *Badger) apply(txn *badger.Txn, batch []*op) error {
	now := s.now().UnixMilli()
	inBatch := map[string]*op{}
	var dups []struct{ dup, orig *op }
	for _, o := range batch {
		if o.read != nil {
			if err := s.applyRead(txn, o.read); err != nil {
				return err
			}
			continue
		}
		r := o.append
		if r.IdemKey != "" && r.IdemCheck {
			if orig, ok := inBatch[r.IdemKey]; ok {
				dups = append(dups, struct{ dup, orig *op }{o, orig})
				continue
			}
			if m, ok, err := s.lookupIdem(txn, r.IdemKey); err != nil {
				return err
			} else if ok {
				o.res = AppendResult{Msg: m, Duplicate: true}
				continue
			}
		}
		seq, err := s.nextConvSeq(txn, r.Conv)
		if err != nil {
			return err
		}
		m := r.Msg
		if r.Log != nil {
			// Every node's view must stamp alike: the log's time, and the
			// log sequence for the id's low bits (unique in the log).
			m.Seq, m.TS = seq, r.Log.TS
			m.ID = fmt.Sprintf("%012x-%06x", r.Log.TS, r.Log.Seq&0xffffff)
		} else {
			m.Seq, m.TS = seq, now
			m.ID = fmt.Sprintf("%012x-%06x", now, s.idSeq.Add(1)&0xffffff)
		}
		val, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := txn.Set(msgKey(r.Conv, seq), val); err != nil {
			return err
		}
		p := ptr(r.Conv, seq)
		if err := s.index(txn, r.Conv, &m, p); err != nil {
			return err
		}
		o.pos, o.payload = make([]uint64, len(r.Recipients)), val
		for i, u := range r.Recipients {
			pos, err := s.nextFeedPos(txn, u)
			if err != nil {
				return err
			}
			o.pos[i] = pos
			if err := txn.Set(feedKey(u, pos), p); err != nil {
				return err
			}
			if k := u + "\x00" + string(r.Conv); !s.inConv[k] {
				if err := txn.Set([]byte("uc/"+u+"/"+string(r.Conv)), nil); err != nil {
					return err
				}
				s.inConv[k] = true
			}
		}
		// Sending implies having read everything up to one's own message.
		if err := s.applyRead(txn, &readReq{user: m.From, conv: r.Conv, seq: seq}); err != nil {
			return err
		}
		if r.IdemKey != "" {
			if err := txn.SetEntry(badger.NewEntry([]byte("id/"+r.IdemKey), p).WithTTL(idemTTL)); err != nil {
				return err
			}
			inBatch[r.IdemKey] = o
		}
		o.res = AppendResult{Msg: m}
	}
	for _, d := range dups {
		d.dup.res = AppendResult{Msg: d.orig.res.Msg, Duplicate: true}
	}
	return nil
}

func (s *Badger) applyRead(txn *badger.Txn, r *readReq) error {
	k := "rd/" + r.user + "/" + string(r.conv)
	cur, ok := s.read[k]
	if !ok {
		var err error
		if cur, err = getU64(txn, []byte(k)); err != nil {
			return err
		}
	}
	if r.seq <= cur {
		s.read[k] = cur
		return nil
	}
	if last, err := s.nextConvSeqPeek(txn, r.conv); err != nil {
		return err
	} else if r.seq > last {
		r.seq = last // a marker past the end would hide future messages
	}
	s.read[k] = r.seq
	return txn.Set([]byte(k), be8(r.seq))
}

func getU64(txn *badger.Txn, k []byte) (uint64, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = it.Value(func(v []byte) error {
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n, err
}

func (s *Badger) lookupIdem(txn *badger.Txn, key string) (envelope.Message, bool, error) {
	it, err := txn.Get([]byte("id/" + key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return envelope.Message{}, false, nil
	}
	if err != nil {
		return envelope.Message{}, false, err
	}
	p, err := it.ValueCopy(nil)
	if err != nil {
		return envelope.Message{}, false, err
	}
	conv, seq, ok := parsePtr(p)
	if !ok {
		return envelope.Message{}, false, nil
	}
	m, err := getMsg(txn, conv, seq)
	return m, err == nil, err
}

func getMsg(txn *badger.Txn, conv ConvID, seq uint64) (envelope.Message, error) {
	m, _, err := getMsgRaw(txn, conv, seq)
	return m, err
}

// getMsgRaw is getMsg that also returns the stored JSON.
func getMsgRaw(txn *badger.Txn, conv ConvID, seq uint64) (envelope.Message, []byte, error) {
	var m envelope.Message
	it, err := txn.Get(msgKey(conv, seq))
	if err != nil {
		return m, nil, err
	}
	v, err := it.ValueCopy(nil)
	if err == nil {
		err = json.Unmarshal(v, &m)
	}
	return m, v, err
}

// lastUnder returns the big-endian counter of the greatest key under prefix.
func lastUnder(txn *badger.Txn, prefix []byte) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
	defer it.Close()
	seek := append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it.Seek(seek)
	if !it.Valid() {
		return 0, nil
	}
	k := it.Item().Key()
	if len(k) != len(prefix)+8 {
		return 0, fmt.Errorf("unexpected key %q", k)
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), nil
}

// nextConvSeqPeek returns the last assigned seq of conv (writer only).
func (s *Badger) nextConvSeqPeek(txn *badger.Txn, conv ConvID) (uint64, error) {
	if n, ok := s.convSeq[conv]; ok {
		return n, nil
	}
	n, err := lastUnder(txn, []byte("m/"+string(conv)+"/"))
	if err != nil {
		return 0, err
	}
	if c, _ := s.committed(conv, ""); n < c {
		// Reusing a seq would overwrite a stored message.
		return 0, fmt.Errorf("%w: last seq of %s reads as %d, %d committed", ErrCorrupt, conv, n, c)
	}
	s.convSeq[conv] = n
	return n, nil
}

func (s *Badger) nextConvSeq(txn *badger.Txn, conv ConvID) (uint64, error) {
	n, err := s.nextConvSeqPeek(txn, conv)
	if err != nil {
		return 0, err
	}
	s.convSeq[conv] = n + 1
	return n + 1, nil
}

func (s *Badger) nextFeedPos(txn *badger.Txn, user string) (uint64, error) {
	n, ok := s.feedPos[user]
	if !ok {
		var err error
		n, err = lastUnder(txn, []byte("i/"+user+"/"))
		if err != nil {
			return 0, err
		}
		if _, c := s.committed("", user); n < c {
			return 0, fmt.Errorf("%w: feed of %s reads as ending at %d, %d committed", ErrCorrupt, user, n, c)
		}
	}
	s.feedPos[user] = n + 1
	return n + 1, nil
}

// Page implements Store.
//
// Seqs of a conversation have no gaps, so the page is checked as it is read:
// each seq must follow the one before, the oldest page must end at seq 1,
// and the newest at least at the last seq known committed. A miss is
// ErrCorrupt, never a short page.
func (s *Badger) Page(_ context.Context, conv ConvID, before uint64, limit int) ([]envelope.Message, bool, error) {
	var out []envelope.Message
	more := false
	prefix := []byte("m/" + string(conv) + "/")
	last, _ := s.committed(conv, "")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix, PrefetchValues: true, PrefetchSize: limit + 1})
		defer it.Close()
		seek := msgKey(conv, before)
		if before == 0 {
			seek = append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		}
		// want is the seq the next entry must have (0: not known yet).
		var want uint64
		if last > 0 {
			want = last
			if before != 0 && before-1 < last {
				want = before - 1
			}
		}
		for it.Seek(seek); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: unexpected key %q", ErrCorrupt, k)
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			if before != 0 && seq >= before {
				continue
			}
			if want != 0 && seq < want {
				return fmt.Errorf("%w: seq %d missing (next found: %d)", ErrCorrupt, want, seq)
			}
			if len(out) == limit {
				more = true
				return nil
			}
			var m envelope.Message
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
				return err
			}
			out = append(out, m)
			want = seq - 1
			if want == 0 {
				return nil // seq 1 read: nothing older exists
			}
		}
		if want != 0 {
			return fmt.Errorf("%w: seq %d missing (no older entry found)", ErrCorrupt, want)
		}
		return nil
	})
	if err != nil {
		return nil, false, errorf("page", conv, err)
	}
	return out, more, nil
}

// Sync implements Store.
func (s *Badger) Sync(_ context.Context, user string, after Cursor, limit int) (SyncPage, error) {
	if after.Epoch != "" && after.Epoch != s.epoch {
		return SyncPage{}, ErrCursorEpoch
	}
	page := SyncPage{Next: Cursor{Epoch: s.epoch, Pos: after.Pos}}
	prefix := []byte("i/" + user + "/")
	// Feed positions have no gaps either: each entry must follow the one
	// before, and the feed must reach at least the last position known
	// committed (see Page).
	_, head := s.committed("", user)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: limit + 1})
		defer it.Close()
		for it.Seek(feedKey(user, after.Pos+1)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: unexpected key %q", ErrCorrupt, k)
			}
			pos := binary.BigEndian.Uint64(k[len(prefix):])
			if want := page.Next.Pos + 1; pos != want {
				return fmt.Errorf("%w: feed entry %d of %s missing (next found: %d)", ErrCorrupt, want, user, pos)
			}
			if len(page.Messages) == limit {
				page.More = true
				return nil
			}
			p, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			conv, seq, ok := parsePtr(p)
			if !ok {
				return fmt.Errorf("corrupt feed entry %d of %s", pos, user)
			}
			m, raw, err := getMsgRaw(txn, conv, seq)
			if errors.Is(err, badger.ErrKeyNotFound) {
				// Messages are never deleted: a feed entry always has one.
				err = ErrCorrupt
			}
			if err != nil {
				return fmt.Errorf("feed entry %d of %s: %w", pos, user, err)
			}
			page.Messages = append(page.Messages, m)
			page.Raw = append(page.Raw, raw)
			page.Next.Pos = pos
		}
		if page.Next.Pos < head {
			return fmt.Errorf("%w: feed entry %d of %s missing (feed ends at %d)", ErrCorrupt, page.Next.Pos+1, user, head)
		}
		return nil
	})
	if err != nil {
		return SyncPage{}, fmt.Errorf("history: sync %s: %w", user, err)
	}
	return page, nil
}

// Head implements Store.
func (s *Badger) Head(_ context.Context, user string) (Cursor, error) {
	var pos uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		pos, err = lastUnder(txn, []byte("i/"+user+"/"))
		return err
	})
	if err != nil {
		return Cursor{}, fmt.Errorf("history: head of %s: %w", user, err)
	}
	return Cursor{Epoch: s.epoch, Pos: pos}, nil
}

// summaryScan bounds how many stored messages one conversation's summary
// reads back: past it, the rest of the seqs above the read marker count as
// unread (an estimate only for a conversation that far behind).
const summaryScan = 2000

// summarise finds conv's last message and user's unread count above read
// by reading back from the newest message. Annotations (edits, retractions, reactions)
// take seqs of their own but are neither a conversation's last message nor
// unread: they change one that is. Nor is what user wrote unread.
func summarise(txn *badger.Txn, conv ConvID, user string, read uint64) (*envelope.Message, uint64, error) {
	var lastMsg *envelope.Message
	var unread uint64
	prefix := []byte("m/" + string(conv) + "/")
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
	defer it.Close()
	n := 0
	for it.Seek(msgKey(conv, math.MaxUint64)); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+8 {
			return nil, 0, fmt.Errorf("unexpected key %q", k)
		}
		seq := binary.BigEndian.Uint64(k[len(prefix):])
		if seq <= read && lastMsg != nil {
			break
		}
		if n++; n > summaryScan {
			if seq > read {
				unread += seq - read // the rest, not read back
			}
			break
		}
		var m envelope.Message
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
			return nil, 0, err
		}
		if envelope.IsAnnotation(m.Type) {
			continue
		}
		if lastMsg == nil {
			lastMsg = &m
		}
		if seq > read && m.From != user {
			unread++
		}
	}
	return lastMsg, unread, nil
}

// Conversations implements Store.
func (s *Badger) Conversations(_ context.Context, user string) ([]Summary, error) {
	var out []Summary
	prefix := []byte("uc/" + user + "/")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			conv := ConvID(it.Item().Key()[len(prefix):])
			sum := Summary{Conv: conv}
			var err error
			if sum.Read, err = getU64(txn, []byte("rd/"+user+"/"+string(conv))); err != nil {
				return err
			}
			if sum.Last, sum.Unread, err = summarise(txn, conv, user, sum.Read); err != nil {
				return err
			}
			out = append(out, sum)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history: conversations of %s: %w", user, err)
	}
	sortSummaries(out)
	return out, nil
}
