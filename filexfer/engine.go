package filexfer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Channel carries frames to the peer: typically an ordered, reliable
// RTCDataChannel. Send may block to apply backpressure and may be called
// from several goroutines at once; it must not retain frame after returning.
type Channel interface {
	Send(frame []byte) error
}

// Sink stores an incoming file. Chunks are written in any order; the whole
// file is read back to verify its SHA-256 before it is reported done.
// *os.File is a Sink; so is *MemSink.
type Sink interface {
	io.WriterAt
	io.ReaderAt
}

// Committer is a Sink that must save the file before the sender is told it
// arrived: the engine calls Commit once the SHA-256 has verified and sends
// Complete only if it returns nil (otherwise Cancel with ReasonIO, and the
// Result carries ErrIO). A sink that writes to a temporary file renames and
// syncs it here, so the sender never records a file the receiver lost.
type Committer interface {
	Sink
	Commit() error
}

// Errors reported in Result.Err or returned by Engine methods.
var (
	ErrCancelled    = errors.New("filexfer: transfer cancelled")
	ErrDeclined     = errors.New("filexfer: file declined")
	ErrHashMismatch = errors.New("filexfer: SHA-256 mismatch")
	ErrClosed       = errors.New("filexfer: engine closed")
	ErrUnknownFile  = errors.New("filexfer: unknown file")
	ErrIO           = errors.New("filexfer: file I/O failed")
	ErrProtocol     = errors.New("filexfer: protocol violation")
	ErrTooLarge     = errors.New("filexfer: file too large for the receiver")
	ErrBusy         = errors.New("filexfer: receiver busy with too many files")
	ErrStalled      = errors.New("filexfer: no data arrived for too long")
)

// Direction tells which side of a transfer the local engine is.
type Direction int

// Directions.
const (
	Sending Direction = iota + 1
	Receiving
)

func (d Direction) String() string {
	if d == Sending {
		return "sending"
	}
	return "receiving"
}

// FileInfo describes a file, as carried by a Describe frame. SHA256 is
// all zero until the sender has hashed the file: a sender describes a file
// at once and sends the hash in a Digest frame when it has read the file
// through (the Result of a file that arrived intact always carries it).
type FileInfo struct {
	ID        string
	Name      string
	MIME      string
	Size      uint64
	SHA256    [32]byte
	ChunkSize uint32
}

// hashKnown reports whether fi carries the file's SHA-256 (a Describe sent
// before the sender had hashed the file carries zeros: "digest follows").
func (fi FileInfo) hashKnown() bool { return fi.SHA256 != [32]byte{} }

// sameFile reports whether a and b describe the same file, where a hash
// not known yet matches any.
func sameFile(a, b FileInfo) bool {
	if !a.hashKnown() || !b.hashKnown() {
		a.SHA256, b.SHA256 = [32]byte{}, [32]byte{}
	}
	return a == b
}

// Chunks returns the number of chunks of the file.
func (fi FileInfo) Chunks() uint32 {
	return uint32((fi.Size + uint64(fi.ChunkSize) - 1) / uint64(fi.ChunkSize))
}

func (fi FileInfo) chunkLen(c uint32) int {
	off := uint64(c) * uint64(fi.ChunkSize)
	return int(min(uint64(fi.ChunkSize), fi.Size-off))
}

// Progress reports how far a transfer is. Bytes counts distinct bytes
// received (receiving) or sent at least once (sending).
type Progress struct {
	File        FileInfo
	Dir         Direction
	Bytes       uint64
	BytesPerSec float64
}

// Result ends a transfer. Err is nil when the receiver verified the
// SHA-256 (on the sending side: when the receiver said so with Complete).
type Result struct {
	File   FileInfo
	Dir    Direction
	Err    error
	Remote bool // the peer cancelled or declined
}

// Stats counts chunk traffic for one file (for tests and diagnostics).
type Stats struct {
	Requested  int // chunk requests sent (receiving) or received (sending)
	ReRequests int // requests for chunks asked for before (lost or resumed)
	Received   int // distinct chunks received
	Duplicates int // chunks received again
	Sent       int // chunks served to the channel (sending), repeats included
	Missing    int // chunks not yet received (receiving)
}

// Config configures an Engine. Zero values pick the defaults.
type Config struct {
	// ChunkSize of files this engine sends (default DefaultChunkSize).
	ChunkSize int
	// Window is how many chunks of one incoming file may be requested and
	// not yet received (default 64, i.e. 1 MiB of 16 KiB chunks). The
	// receiver tops the window up when half of it has arrived.
	Window int
	// RequestTimeout is when a requested chunk that has not arrived is
	// asked for again (default 2s).
	RequestTimeout time.Duration
	// Unordered must be set when the Channel may reorder frames: it turns
	// off early loss detection, which assumes chunks arrive in request order.
	Unordered bool
	// OnOffer is told of each new incoming file; answer with Accept or
	// Decline (from any goroutine, at any later time). Nil declines all.
	OnOffer func(FileInfo)
	// OnProgress is called at most every ProgressInterval per file, and once
	// when the last byte is in.
	OnProgress func(Progress)
	// ProgressInterval defaults to 100ms.
	ProgressInterval time.Duration
	// OnDone is called once per file when it ends, successfully or not.
	OnDone func(Result)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxChunks bounds the chunks of a file this engine receives (default
	// DefaultMaxChunks). A receiver keeps two bits per chunk of an accepted
	// file, so a tiny declared chunk size must not make a large file cost
	// memory: a Describe with more chunks is refused with ReasonTooLarge
	// before anything is allocated for it, and OnOffer is not called.
	MaxChunks int
	// StallTimeout ends an accepted incoming file with ErrStalled (Cancel to
	// the sender) when no new chunk has arrived for this long, connected or
	// not, so a sender that vanished does not hold the receiver's file open
	// forever (default 2 minutes; negative: never). A file whose chunks are
	// all in waits this long for the sender's Digest.
	StallTimeout time.Duration
}

// DefaultMaxChunks is Config.MaxChunks's default: 4 Mi chunks, 64 GiB of
// 16 KiB chunks, 1 MiB of bookkeeping for a file that large.
const DefaultMaxChunks = 1 << 22

// maxEndedIncoming is how many ended incoming files an engine remembers
// (so that their late frames are ignored and Stats still answers); older
// ones are forgotten, so a peer cannot grow the engine by offering files.
const maxEndedIncoming = 1024

// Engine moves files in both directions over one Channel at a time. The
// receiver drives: it asks for the chunks it lacks, Window at a time, asks
// again for chunks that do not arrive, and after Attach with a new Channel
// (reconnect) asks only for what is still missing. Callbacks are invoked
// without the engine's lock held and must not block for long.
type Engine struct {
	cfg Config

	rx sync.Mutex // serialises HandleFrame, so chunk writes are ordered before verification
	// announce is held (before mu) while a Describe or Digest is sent, so
	// that a file's Digest never overtakes its Describe on a channel.
	announce sync.Mutex

	mu     sync.Mutex
	ch     Channel
	dead   []Channel // recently detached channels, whose late frames are ignored
	out    map[string]*outgoing
	in     map[string]*incoming
	ended  []string // ids of ended incoming files, oldest first (see maxEndedIncoming)
	queue  []queued // chunks to send, in request order
	wake   chan struct{}
	hashq  []*outgoing // files to hash, in SendFile order (see hashLoop)
	hashed chan struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

type queued struct {
	file *outgoing
	r    Range
}

type meter struct {
	bytes     uint64
	lastT     time.Time
	lastBytes uint64
	rate      float64
	reported  time.Time
}

type outgoing struct {
	info  FileInfo // info.SHA256 is set once hashLoop has read src through
	src   io.ReaderAt
	sent  []bool
	meter meter
	stats Stats
	ended bool
	stop  chan struct{} // closed when the file ends: hashLoop stops reading it
}

// incoming is a file being received. Its per-chunk state (have, asked) is
// allocated by Accept and dropped when it ends, so an offer costs nothing
// per chunk until the application takes it.
type incoming struct {
	info     FileInfo
	sink     Sink
	accepted bool
	ended    bool
	have     bitset
	nhave    uint32
	next     uint32   // first chunk never requested
	lost     []uint32 // chunks to ask for again
	inflight map[uint32]inflightReq
	seq      uint64
	asked    bitset    // asked for at least once
	lastData time.Time // Accept, the last new chunk, or the sink hashed (see Config.StallTimeout)
	meter    meter
	stats    Stats
	// verifying is set when every chunk is in and verify hashes the sink;
	// sum is what it found when the sender's hash was not known yet: the
	// Digest, when it comes, is checked against it.
	verifying bool
	sum       *[32]byte
}

// bitset is one bit per chunk.
type bitset []uint64

func newBitset(n uint32) bitset    { return make(bitset, (uint64(n)+63)/64) }
func (b bitset) get(i uint32) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint32)      { b[i/64] |= 1 << (i % 64) }

type inflightReq struct {
	at    time.Time
	seq   uint64
	again bool // a re-request: its answer may be the late answer of an earlier request
}

// NewEngine starts an engine; Close stops it.
func NewEngine(cfg Config) *Engine {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	cfg.ChunkSize = min(cfg.ChunkSize, MaxChunkSize)
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 100 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxChunks <= 0 {
		cfg.MaxChunks = DefaultMaxChunks
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = 2 * time.Minute
	}
	e := &Engine{
		cfg:    cfg,
		out:    make(map[string]*outgoing),
		in:     make(map[string]*incoming),
		wake:   make(chan struct{}, 1),
		hashed: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	e.wg.Add(3)
	go e.sendLoop()
	go e.tickLoop()
	go e.hashLoop()
	return e
}

// NewFileID returns a random file id (16 bytes, hex).
func NewFileID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Attach makes ch the engine's channel (replacing any other). Files being
// sent are described again (with their SHA-256 if it is known by now, which
// stands in for a Digest lost with the old channel) and files being
// received ask for what they still lack, so a transfer resumes where it
// stopped.
func (e *Engine) Attach(ch Channel) {
	e.announce.Lock()
	defer e.announce.Unlock()
	e.mu.Lock()
	if e.ch != nil {
		e.detachLocked()
	}
	// With no channel before, requests queued meanwhile came from the peer
	// attaching first on the new connection: keep them.
	e.ch = ch
	var frames []*Frame
	for _, o := range e.out {
		if !o.ended {
			frames = append(frames, describeFrame(o.info))
		}
	}
	for _, in := range e.in {
		frames = append(frames, e.pumpLocked(in)...)
	}
	e.mu.Unlock()
	e.kick() // requests may have queued up while there was no channel
	e.sendFrames(ch, frames)
}

// kick wakes the send loop.
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Detach forgets ch if it is the current channel (it broke or closed; a
// channel already replaced by Attach is left alone). Chunks requested on it
// and not received will be asked for again after the next Attach; chunks
// queued for sending on it are dropped (the peer will ask again).
func (e *Engine) Detach(ch Channel) {
	e.mu.Lock()
	if e.ch == ch {
		e.detachLocked()
	}
	e.mu.Unlock()
}

func (e *Engine) detachLocked() {
	if e.ch != nil {
		e.dead = append(e.dead, e.ch)
		if len(e.dead) > 8 {
			e.dead = e.dead[1:]
		}
	}
	e.ch = nil
	e.queue = nil
	for _, in := range e.in {
		for c := range in.inflight {
			in.lost = append(in.lost, c)
		}
		clear(in.inflight)
	}
}

// SendFile offers a file to the peer: it sends a Describe at once, serves
// the chunks the peer asks for, and meanwhile hashes src (size bytes) in
// the background, sending the SHA-256 in a Digest frame when it is done
// (files are hashed one at a time, in the order they were offered). The
// returned FileInfo carries the new file id and no SHA-256 yet: the Result
// has it. A read error while hashing ends the file with ErrIO.
func (e *Engine) SendFile(name, mime string, src io.ReaderAt, size int64) (FileInfo, error) {
	info := FileInfo{ID: NewFileID(), Name: name, MIME: mime, Size: uint64(size), ChunkSize: uint32(e.cfg.ChunkSize)}
	f := describeFrame(info)
	if _, err := f.Encode(); err != nil {
		return FileInfo{}, err
	}
	e.announce.Lock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.announce.Unlock()
		return FileInfo{}, ErrClosed
	}
	o := &outgoing{info: info, src: src, sent: make([]bool, info.Chunks()), meter: meter{lastT: e.cfg.Now()}, stop: make(chan struct{})}
	e.out[info.ID] = o
	e.hashq = append(e.hashq, o)
	ch := e.ch
	e.mu.Unlock()
	e.sendFrames(ch, []*Frame{f})
	e.announce.Unlock()
	select {
	case e.hashed <- struct{}{}:
	default:
	}
	return info, nil
}

// hashBlock is how much of a file hashLoop reads at a time.
const hashBlock = 256 << 10

// errHashStopped is hashSource's answer when the file ended meanwhile.
var errHashStopped = errors.New("filexfer: hashing stopped")

// hashLoop hashes the files SendFile queued, one at a time, and sends each
// file's Digest. A file that ends (cancel, decline, Close) stops being read
// within one block.
func (e *Engine) hashLoop() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		for len(e.hashq) == 0 {
			e.mu.Unlock()
			select {
			case <-e.done:
				return
			case <-e.hashed:
			}
			e.mu.Lock()
		}
		o := e.hashq[0]
		e.hashq[0] = nil
		e.hashq = e.hashq[1:]
		src, info, ended := o.src, o.info, o.ended
		e.mu.Unlock()
		if ended {
			continue
		}
		sum, err := e.hashSource(src, int64(info.Size), o.stop)
		if errors.Is(err, errHashStopped) {
			continue
		}
		if err != nil {
			err = fmt.Errorf("%w: hash %q: %w", ErrIO, info.Name, err)
		}
		e.announceOut(o, sum, err)
	}
}

// announceOut tells the peer, never before the file's Describe (announce),
// the SHA-256 of an outgoing file (a Digest), or, when readErr says its
// source could not be read, that it ended (Cancel ReasonIO; the Result
// carries readErr). A file that ended meanwhile is left alone.
func (e *Engine) announceOut(o *outgoing, sum [32]byte, readErr error) {
	e.announce.Lock()
	e.mu.Lock()
	if o.ended {
		e.mu.Unlock()
		e.announce.Unlock()
		return
	}
	ch := e.ch
	f := &Frame{Type: TypeDigest, FileID: o.info.ID, SHA256: sum}
	var results []Result
	if readErr != nil {
		results = append(results, e.endOutLocked(o, readErr, false))
		f = &Frame{Type: TypeCancel, FileID: o.info.ID, Reason: ReasonIO}
	} else {
		o.info.SHA256 = sum
	}
	e.mu.Unlock()
	e.sendFrames(ch, []*Frame{f})
	e.announce.Unlock()
	e.report(results...)
}

// hashSource returns the SHA-256 of src's first size bytes, or
// errHashStopped once stop is closed or the engine closes.
func (e *Engine) hashSource(src io.ReaderAt, size int64, stop <-chan struct{}) ([32]byte, error) {
	h := sha256.New()
	buf := make([]byte, min(size, hashBlock))
	for off := int64(0); off < size; {
		select {
		case <-stop:
			return [32]byte{}, errHashStopped
		case <-e.done:
			return [32]byte{}, errHashStopped
		default:
		}
		p := buf[:min(size-off, hashBlock)]
		if n, err := src.ReadAt(p, off); err != nil && !(err == io.EOF && n == len(p)) {
			return [32]byte{}, err
		}
		h.Write(p)
		off += int64(len(p))
	}
	return [32]byte(h.Sum(nil)), nil
}

func describeFrame(fi FileInfo) *Frame {
	return &Frame{Type: TypeDescribe, FileID: fi.ID, Name: fi.Name, Size: fi.Size, MIME: fi.MIME, SHA256: fi.SHA256, ChunkSize: fi.ChunkSize}
}

// Accept starts receiving an offered file into sink.
func (e *Engine) Accept(fileID string, sink Sink) error {
	e.mu.Lock()
	in, ok := e.in[fileID]
	if !ok || in.accepted || in.ended {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownFile, fileID)
	}
	n := in.info.Chunks()
	in.accepted, in.sink = true, sink
	in.have, in.asked, in.inflight = newBitset(n), newBitset(n), make(map[uint32]inflightReq)
	in.meter.lastT = e.cfg.Now()
	in.lastData = in.meter.lastT
	frames := e.pumpLocked(in)
	ch := e.ch
	empty := in.info.Size == 0
	in.verifying = empty
	e.mu.Unlock()
	if empty {
		e.wg.Add(1)
		go e.verify(in)
	}
	e.sendFrames(ch, frames)
	return nil
}

// Decline refuses an offered file; the sender gets Cancel (ReasonDeclined).
func (e *Engine) Decline(fileID string) error {
	return e.end(fileID, ErrDeclined, ReasonDeclined)
}

// Refuse declines an offered file, or abandons one in either direction,
// telling the peer why in the Cancel frame: ReasonTooLarge or ReasonBusy
// for a receiver's limits. The local Result carries the reason's error
// (ErrTooLarge, ErrBusy, ...; ErrCancelled for reasons without one).
func (e *Engine) Refuse(fileID string, reason CancelReason) error {
	why, ok := reasonErrors[reason]
	if !ok {
		why = ErrCancelled
	}
	return e.end(fileID, why, reason)
}

// Cancel abandons a file in either direction; the peer gets Cancel.
func (e *Engine) Cancel(fileID string) error {
	return e.end(fileID, ErrCancelled, ReasonCancelled)
}

func (e *Engine) end(fileID string, why error, reason CancelReason) error {
	e.mu.Lock()
	var results []Result
	if o, ok := e.out[fileID]; ok && !o.ended {
		results = append(results, e.endOutLocked(o, why, false))
	}
	if in, ok := e.in[fileID]; ok && !in.ended {
		results = append(results, e.endInLocked(in, why, false))
	}
	ch := e.ch
	e.mu.Unlock()
	if len(results) == 0 {
		return fmt.Errorf("%w: %s", ErrUnknownFile, fileID)
	}
	e.sendFrames(ch, []*Frame{{Type: TypeCancel, FileID: fileID, Reason: reason}})
	e.report(results...)
	return nil
}

func (e *Engine) endOutLocked(o *outgoing, err error, remote bool) Result {
	o.ended = true
	o.src = nil
	close(o.stop)
	q := e.queue[:0]
	for _, x := range e.queue {
		if x.file != o {
			q = append(q, x)
		}
	}
	e.queue = q
	return Result{File: o.info, Dir: Sending, Err: err, Remote: remote}
}

// endInLocked ends an incoming file and frees its per-chunk state.
func (e *Engine) endInLocked(in *incoming, err error, remote bool) Result {
	in.ended = true
	in.sink = nil
	in.lost, in.inflight, in.have, in.asked = nil, nil, nil, nil
	e.ended = append(e.ended, in.info.ID)
	if len(e.ended) > maxEndedIncoming {
		if old := e.in[e.ended[0]]; old != nil && old.ended {
			delete(e.in, e.ended[0])
		}
		e.ended = e.ended[1:]
	}
	return Result{File: in.info, Dir: Receiving, Err: err, Remote: remote}
}

// Stats returns the chunk counters of a file; receiving and sending
// records of the same id are summed.
func (e *Engine) Stats(fileID string) (Stats, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Stats
	o, ok1 := e.out[fileID]
	in, ok2 := e.in[fileID]
	if ok1 {
		s = o.stats
	}
	if ok2 {
		s.Requested += in.stats.Requested
		s.ReRequests += in.stats.ReRequests
		s.Received += in.stats.Received
		s.Duplicates += in.stats.Duplicates
		s.Missing = int(in.info.Chunks() - in.nhave)
	}
	return s, ok1 || ok2
}

// Missing returns how many chunks of an incoming file are still missing.
func (e *Engine) Missing(fileID string) (uint32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in, ok := e.in[fileID]
	if !ok {
		return 0, false
	}
	return in.info.Chunks() - in.nhave, true
}

// Close stops the engine. Transfers still running end with ErrClosed
// (no Cancel is sent: the peer may resume with another engine's help
// only if it still has the data, so it is simply told nothing).
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.detachLocked()
	var results []Result
	for _, o := range e.out {
		if !o.ended {
			results = append(results, e.endOutLocked(o, ErrClosed, false))
		}
	}
	for _, in := range e.in {
		if !in.ended {
			results = append(results, e.endInLocked(in, ErrClosed, false))
		}
	}
	close(e.done)
	e.mu.Unlock()
	e.wg.Wait()
	e.report(results...)
}

func (e *Engine) report(results ...Result) {
	if e.cfg.OnDone == nil {
		return
	}
	for _, r := range results {
		e.cfg.OnDone(r)
	}
}

func (e *Engine) sendFrames(ch Channel, frames []*Frame) {
	if ch == nil {
		return
	}
	for _, f := range frames {
		b, err := f.Encode()
		if err != nil {
			panic("filexfer: encoding own frame: " + err.Error()) // a bug, not input
		}
		if ch.Send(b) != nil {
			return // the channel is broken; Detach/Attach will recover
		}
	}
}

// HandleFrame processes one frame that arrived on ch (the Channel of this
// side of the connection, attached or about to be). Frames arriving on a
// channel already detached are ignored: the transfer state has moved on.
// Malformed frames and frames that make no sense (a request beyond the
// file, a chunk of the wrong length) return an error and change nothing.
// Calls are serialised.
func (e *Engine) HandleFrame(ch Channel, b []byte) error {
	f, err := Decode(b)
	if err != nil {
		return err
	}
	e.rx.Lock()
	defer e.rx.Unlock()
	e.mu.Lock()
	for _, d := range e.dead {
		if d == ch {
			e.mu.Unlock()
			return nil
		}
	}
	e.mu.Unlock()
	switch f.Type {
	case TypeDescribe:
		return e.onDescribe(f)
	case TypeRequest:
		return e.onRequest(f)
	case TypeChunk:
		return e.onChunk(f)
	case TypeCancel:
		return e.onCancel(f)
	case TypeComplete:
		return e.onComplete(f)
	case TypeDigest:
		return e.onDigest(f)
	}
	return nil
}

func (e *Engine) onDescribe(f *Frame) error {
	info := FileInfo{ID: f.FileID, Name: f.Name, MIME: f.MIME, Size: f.Size, SHA256: f.SHA256, ChunkSize: f.ChunkSize}
	if uint64(info.Chunks()) != (info.Size+uint64(info.ChunkSize)-1)/uint64(info.ChunkSize) {
		return fmt.Errorf("%w: %s has more than 2^32 chunks", ErrProtocol, info.ID)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	in, ok := e.in[info.ID]
	if ok {
		if !sameFile(in.info, info) {
			e.mu.Unlock()
			return fmt.Errorf("%w: %s described twice differently", ErrProtocol, info.ID)
		}
		// A re-Describe after reconnect: carry on asking for what is
		// missing. It carries the SHA-256 if the sender has it by now, in
		// case the Digest was lost with the old channel.
		if info.hashKnown() && !in.info.hashKnown() && !in.ended {
			e.learnDigestLocked(in, info.SHA256)
		}
		frames := e.pumpLocked(in)
		ch := e.ch
		e.mu.Unlock()
		e.sendFrames(ch, frames)
		return nil
	}
	in = &incoming{info: info}
	e.in[info.ID] = in
	if int64(info.Chunks()) > int64(e.cfg.MaxChunks) {
		r := e.endInLocked(in, fmt.Errorf("%w: %d chunks of %d bytes, at most %d chunks", ErrTooLarge, info.Chunks(), info.ChunkSize, e.cfg.MaxChunks), false)
		ch := e.ch
		e.mu.Unlock()
		e.sendFrames(ch, []*Frame{{Type: TypeCancel, FileID: info.ID, Reason: ReasonTooLarge}})
		e.report(r)
		return nil
	}
	e.mu.Unlock()
	if e.cfg.OnOffer == nil {
		_ = e.Decline(info.ID)
		return nil
	}
	e.cfg.OnOffer(info)
	return nil
}

// pumpLocked tops up the request window of in and returns the Request
// frames to send. Lost chunks go first, then chunks never asked for.
func (e *Engine) pumpLocked(in *incoming) []*Frame {
	if !in.accepted || in.ended || e.ch == nil {
		return nil
	}
	free := e.cfg.Window - len(in.inflight)
	if free < (e.cfg.Window+1)/2 {
		return nil
	}
	now := e.cfg.Now()
	var ranges []Range
	add := func(c uint32) {
		in.seq++
		again := in.asked.get(c)
		in.inflight[c] = inflightReq{at: now, seq: in.seq, again: again}
		in.stats.Requested++
		if again {
			in.stats.ReRequests++
		}
		in.asked.set(c)
		if k := len(ranges) - 1; k >= 0 && ranges[k].First+ranges[k].Count == c {
			ranges[k].Count++
		} else {
			ranges = append(ranges, Range{First: c, Count: 1})
		}
		free--
	}
	for free > 0 && len(in.lost) > 0 {
		c := in.lost[0]
		in.lost = in.lost[1:]
		if _, busy := in.inflight[c]; !in.have.get(c) && !busy {
			add(c)
		}
	}
	n := in.info.Chunks()
	for free > 0 && in.next < n {
		if !in.have.get(in.next) {
			add(in.next)
		}
		in.next++
	}
	var frames []*Frame
	for len(ranges) > 0 {
		k := min(len(ranges), MaxRangesPerRequest)
		frames = append(frames, &Frame{Type: TypeRequest, FileID: in.info.ID, Ranges: ranges[:k]})
		ranges = ranges[k:]
	}
	return frames
}

func (e *Engine) onRequest(f *Frame) error {
	e.mu.Lock()
	o, ok := e.out[f.FileID]
	if ok && o.ended {
		e.mu.Unlock()
		return nil // requests in flight when the file ended
	}
	if !ok {
		ch := e.ch
		e.mu.Unlock()
		// We do not have (any more) what the peer wants: tell it to stop.
		e.sendFrames(ch, []*Frame{{Type: TypeCancel, FileID: f.FileID, Reason: ReasonUnknownFile}})
		return fmt.Errorf("%w: request for %s", ErrUnknownFile, f.FileID)
	}
	n := o.info.Chunks()
	for _, r := range f.Ranges {
		if r.First >= n || r.Count > n-r.First {
			e.mu.Unlock()
			return fmt.Errorf("%w: request %d+%d of %s beyond %d chunks", ErrProtocol, r.First, r.Count, f.FileID, n)
		}
	}
	for _, r := range f.Ranges {
		o.stats.Requested += int(r.Count)
		e.queue = append(e.queue, queued{file: o, r: r})
	}
	e.mu.Unlock()
	e.kick()
	return nil
}

// sendLoop serves queued chunk requests in order, one chunk at a time, so
// Channel.Send's backpressure paces it and a Cancel takes effect at once.
func (e *Engine) sendLoop() {
	defer e.wg.Done()
	var buf, frameBuf []byte
	for {
		e.mu.Lock()
		for len(e.queue) == 0 || e.ch == nil {
			e.mu.Unlock()
			select {
			case <-e.done:
				return
			case <-e.wake:
			}
			e.mu.Lock()
		}
		q := &e.queue[0]
		o, c, ch := q.file, q.r.First, e.ch
		q.r.First++
		q.r.Count--
		if q.r.Count == 0 {
			e.queue = e.queue[1:]
		}
		// Counted when taken off the queue, so that once Detach has emptied
		// the queue the count is final for that channel.
		o.stats.Sent++
		src, info := o.src, o.info
		e.mu.Unlock()

		n := info.chunkLen(c)
		if cap(buf) < n {
			buf = make([]byte, info.ChunkSize)
		}
		data := buf[:n]
		if _, err := src.ReadAt(data, int64(c)*int64(info.ChunkSize)); err != nil && !(err == io.EOF && n > 0) {
			e.announceOut(o, [32]byte{}, fmt.Errorf("%w: read %q chunk %d: %w", ErrIO, info.Name, c, err))
			continue
		}
		frame := Frame{Type: TypeChunk, FileID: info.ID, ChunkID: c, Data: data}
		frameBuf, _ = frame.AppendEncode(frameBuf[:0])
		if err := ch.Send(frameBuf); err != nil {
			continue // broken channel: the receiver re-requests after reconnect
		}
		e.mu.Lock()
		var p *Progress
		if !o.sent[c] {
			o.sent[c] = true
			p = e.meterLocked(&o.meter, uint64(n), o.info, Sending, o.meter.bytes+uint64(n) == info.Size)
		}
		e.mu.Unlock()
		if p != nil && e.cfg.OnProgress != nil {
			e.cfg.OnProgress(*p)
		}
	}
}

// meterLocked adds n bytes and returns a progress report if one is due.
func (e *Engine) meterLocked(m *meter, n uint64, info FileInfo, dir Direction, last bool) *Progress {
	m.bytes += n
	now := e.cfg.Now()
	if dt := now.Sub(m.lastT); dt >= 250*time.Millisecond || m.rate == 0 && dt > 0 {
		inst := float64(m.bytes-m.lastBytes) / dt.Seconds()
		if m.rate == 0 {
			m.rate = inst
		} else {
			m.rate = 0.7*m.rate + 0.3*inst
		}
		m.lastT, m.lastBytes = now, m.bytes
	}
	if !last && now.Sub(m.reported) < e.cfg.ProgressInterval {
		return nil
	}
	m.reported = now
	return &Progress{File: info, Dir: dir, Bytes: m.bytes, BytesPerSec: m.rate}
}

func (e *Engine) onChunk(f *Frame) error {
	e.mu.Lock()
	in, ok := e.in[f.FileID]
	if !ok || !in.accepted || in.ended {
		e.mu.Unlock()
		return nil // late chunks of a cancelled file are expected
	}
	c := f.ChunkID
	if c >= in.info.Chunks() || len(f.Data) != in.info.chunkLen(c) {
		e.mu.Unlock()
		return fmt.Errorf("%w: chunk %d of %s with %d bytes", ErrProtocol, c, f.FileID, len(f.Data))
	}
	if in.have.get(c) {
		in.stats.Duplicates++
		e.mu.Unlock()
		return nil
	}
	req, wasInflight := in.inflight[c]
	delete(in.inflight, c)
	if wasInflight && !req.again && !e.cfg.Unordered {
		// The sender serves requests in order over an ordered channel, so
		// any chunk asked for before this one and still missing was lost.
		// Only a chunk asked for once proves it: the answer to a re-request
		// may be the late answer to the first request.
		for lc, r := range in.inflight {
			if r.seq < req.seq {
				delete(in.inflight, lc)
				in.lost = append(in.lost, lc)
			}
		}
	}
	in.have.set(c)
	in.nhave++
	in.lastData = e.cfg.Now()
	in.stats.Received++
	complete := in.nhave == in.info.Chunks()
	in.verifying = complete
	sink := in.sink
	p := e.meterLocked(&in.meter, uint64(len(f.Data)), in.info, Receiving, complete)
	frames := e.pumpLocked(in)
	ch := e.ch
	e.mu.Unlock()

	if _, err := sink.WriteAt(f.Data, int64(c)*int64(in.info.ChunkSize)); err != nil {
		e.mu.Lock()
		r := e.endInLocked(in, fmt.Errorf("%w: write %q: %w", ErrIO, in.info.Name, err), false)
		e.mu.Unlock()
		e.sendFrames(ch, []*Frame{{Type: TypeCancel, FileID: in.info.ID, Reason: ReasonIO}})
		e.report(r)
		return nil
	}
	e.sendFrames(ch, frames)
	if p != nil && e.cfg.OnProgress != nil {
		e.cfg.OnProgress(*p)
	}
	if complete {
		e.wg.Add(1)
		go e.verify(in)
	}
	return nil
}

func (e *Engine) onDigest(f *Frame) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	in, ok := e.in[f.FileID]
	switch {
	case !ok:
		return fmt.Errorf("%w: digest for %s", ErrUnknownFile, f.FileID)
	case in.ended:
		return nil // the digest of a file that ended meanwhile
	case f.SHA256 == [32]byte{}:
		return fmt.Errorf("%w: %s: digest of zeros", ErrProtocol, f.FileID)
	case in.info.hashKnown():
		if in.info.SHA256 != f.SHA256 {
			return fmt.Errorf("%w: %s: digest differs from the SHA-256 described", ErrProtocol, f.FileID)
		}
		return nil // described with it after a reconnect, or a repeat
	}
	e.learnDigestLocked(in, f.SHA256)
	return nil
}

// learnDigestLocked records the sender's SHA-256 of an incoming file that
// has not ended; if the sink was hashed already (verify), the file is
// checked against it now.
func (e *Engine) learnDigestLocked(in *incoming, sum [32]byte) {
	in.info.SHA256 = sum
	if in.sum == nil {
		return
	}
	got := *in.sum
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.check(in, got)
	}()
}

// verify hashes a complete incoming file, and checks it against the
// sender's SHA-256 if that is known (otherwise the Digest will, see
// learnDigestLocked). It runs after the last WriteAt (HandleFrame is
// serialised) on its own goroutine so other transfers are not held up.
func (e *Engine) verify(in *incoming) {
	defer e.wg.Done()
	e.mu.Lock()
	sink, info := in.sink, in.info
	e.mu.Unlock()
	if sink == nil {
		return // cancelled meanwhile
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(sink, 0, int64(info.Size))); err != nil {
		e.conclude(in, fmt.Errorf("%w: read back %q: %w", ErrIO, info.Name, err), ReasonIO)
		return
	}
	sum := [32]byte(h.Sum(nil))
	e.mu.Lock()
	if !in.ended && !in.info.hashKnown() {
		in.sum = &sum
		in.lastData = e.cfg.Now() // the wait for the Digest starts now
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.check(in, sum)
}

// check concludes an incoming file whose sink hashed to sum, now that the
// sender's SHA-256 is known.
func (e *Engine) check(in *incoming, sum [32]byte) {
	e.mu.Lock()
	want := in.info.SHA256
	e.mu.Unlock()
	if sum != want {
		e.conclude(in, ErrHashMismatch, ReasonHashMismatch)
		return
	}
	e.conclude(in, nil, 0)
}

// conclude ends a verified (err == nil) incoming file: it commits it (see
// Committer) and sends Complete, or on failure Cancel with reason; then it
// reports the Result.
func (e *Engine) conclude(in *incoming, err error, reason CancelReason) {
	e.mu.Lock()
	if in.ended {
		e.mu.Unlock()
		return
	}
	// Ended before Commit: a Cancel arriving meanwhile cannot void a file
	// that is being saved, and Close waits for it (e.wg).
	sink, info := in.sink, in.info
	r := e.endInLocked(in, err, false)
	e.mu.Unlock()
	if c, ok := sink.(Committer); ok && err == nil {
		if cerr := c.Commit(); cerr != nil {
			err, reason = fmt.Errorf("%w: save %q: %w", ErrIO, info.Name, cerr), ReasonIO
			r.Err = err
		}
	}
	e.mu.Lock()
	ch := e.ch
	e.mu.Unlock()
	if err == nil {
		e.sendFrames(ch, []*Frame{{Type: TypeComplete, FileID: info.ID}})
	} else {
		e.sendFrames(ch, []*Frame{{Type: TypeCancel, FileID: info.ID, Reason: reason}})
	}
	e.report(r)
}

// reasonErrors maps a peer's cancel reason to the error its Result carries.
var reasonErrors = map[CancelReason]error{
	ReasonDeclined:     ErrDeclined,
	ReasonHashMismatch: ErrHashMismatch,
	ReasonIO:           ErrIO,
	ReasonUnknownFile:  ErrUnknownFile,
	ReasonTooLarge:     ErrTooLarge,
	ReasonBusy:         ErrBusy,
}

func (e *Engine) onCancel(f *Frame) error {
	why, ok := reasonErrors[f.Reason]
	if !ok {
		why = ErrCancelled
	}
	e.mu.Lock()
	var results []Result
	if o, ok := e.out[f.FileID]; ok && !o.ended {
		results = append(results, e.endOutLocked(o, why, true))
	}
	if in, ok := e.in[f.FileID]; ok && !in.ended {
		results = append(results, e.endInLocked(in, why, true))
	}
	e.mu.Unlock()
	e.report(results...)
	return nil
}

func (e *Engine) onComplete(f *Frame) error {
	e.mu.Lock()
	o, ok := e.out[f.FileID]
	if !ok || o.ended {
		e.mu.Unlock()
		return nil
	}
	r := e.endOutLocked(o, nil, false)
	e.mu.Unlock()
	e.report(r)
	return nil
}

// tickLoop re-requests chunks whose request timed out and ends files that
// stalled (Config.StallTimeout).
func (e *Engine) tickLoop() {
	defer e.wg.Done()
	t := time.NewTicker(max(e.cfg.RequestTimeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		now := e.cfg.Now()
		var frames []*Frame
		var stalled []Result
		for _, in := range e.in {
			// A file whose sink is being hashed waits for nothing.
			if !in.accepted || in.ended || in.verifying && in.sum == nil {
				continue
			}
			if e.cfg.StallTimeout > 0 && now.Sub(in.lastData) >= e.cfg.StallTimeout {
				what := "nothing"
				if in.sum != nil {
					what = "no SHA-256 from the sender"
				}
				stalled = append(stalled, e.endInLocked(in, fmt.Errorf("%w: %q: %s for %v", ErrStalled, in.info.Name, what, e.cfg.StallTimeout), false))
				frames = append(frames, &Frame{Type: TypeCancel, FileID: in.info.ID})
				continue
			}
			for c, r := range in.inflight {
				if now.Sub(r.at) >= e.cfg.RequestTimeout {
					delete(in.inflight, c)
					in.lost = append(in.lost, c)
				}
			}
			frames = append(frames, e.pumpLocked(in)...)
		}
		ch := e.ch
		e.mu.Unlock()
		e.sendFrames(ch, frames)
		e.report(stalled...)
	}
}

// MemSink is an in-memory Sink that grows as needed.
type MemSink struct {
	mu  sync.Mutex
	buf []byte
}

// WriteAt implements io.WriterAt.
func (m *MemSink) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		if end > cap(m.buf) {
			// Double: append's own growth is 1.25x for large slices, which
			// copies a growing file over and over as chunks arrive.
			grown := make([]byte, len(m.buf), max(end, 2*cap(m.buf)))
			copy(grown, m.buf)
			m.buf = grown
		}
		m.buf = m.buf[:end]
	}
	return copy(m.buf[off:], p), nil
}

// ReadAt implements io.ReaderAt.
func (m *MemSink) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Bytes returns the sink's contents.
func (m *MemSink) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf
}
