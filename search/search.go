// Package search is the full-text index of chat history (bleve): words
// match whole and case-insensitively, and Chinese, Japanese and Korean
// text is indexed as overlapping pairs of characters (bleve's cjk
// analyzer), so any two or more consecutive characters find it.
//
// The index is derived from history, never the other way round. It
// follows history's journal of appends (history.Badger.Changes): each
// index batch records, in the same batch, the journal position it reached,
// so whatever a crash loses of the index, the position lost with it and
// the next start indexes that part again. At open the position is compared
// with history's: behind, it catches up; ahead (the history was replaced),
// of another history epoch, or unreadable, the index is rebuilt from the
// whole journal. While running it follows history's commits within
// moments (Wake); a search reads every hit back from history, so it
// returns messages as they are now even before the index caught up with
// an edit or a retraction.
package search

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"

	index "github.com/blevesearch/bleve_index_api"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
)

// Source is the history an index follows: the node's own store (a
// cluster node's view), whose journal numbers are its own.
type Source interface {
	Epoch() string
	JournalHead() uint64
	Changes(ctx context.Context, after uint64, limit int) ([]history.Change, error)
	Lookup(ctx context.Context, conv history.ConvID, id string) (envelope.Message, error)
}

// Options tune an index.
type Options struct {
	Log *slog.Logger
	// Batch is how many journal entries one index batch takes (default 2000).
	Batch int
}

// Index is the search index of one history store.
type Index struct {
	idx      bleve.Index
	src      Source
	log      *slog.Logger
	batch    int
	analyzer analysis.Analyzer
	pos      atomic.Uint64 // journal position indexed
	wake     chan struct{}
	stop     context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex // one indexing pass at a time (follow, CatchUp)
	closing  sync.Once
	closeErr error
}

// Internal keys of the bleve index.
var (
	keyPos   = []byte("mqim/pos")
	keyEpoch = []byte("mqim/epoch")
)

// Fields of an indexed message; the document id is "{id} {conv}". N, the
// message's journal number, orders hits newest first; TS bounds "before".
type doc struct {
	Body   string   `json:"body"`
	ID     string   `json:"id"`
	Conv   string   `json:"conv"`
	Reader []string `json:"reader"` // "u:{user}" for each DM party, "g:{gid}" for a group
	N      float64  `json:"n"`
	TS     float64  `json:"ts"`
}

func docID(conv history.ConvID, id string) string { return id + " " + string(conv) }

func parseDocID(s string) (history.ConvID, string, bool) {
	id, conv, ok := strings.Cut(s, " ")
	return history.ConvID(conv), id, ok
}

func readers(conv history.ConvID) []string {
	s := string(conv)
	if gid, ok := strings.CutPrefix(s, "g:"); ok {
		return []string{"g:" + gid}
	}
	parts := strings.SplitN(strings.TrimPrefix(s, "dm:"), ":", 2)
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = "u:" + p
	}
	return out
}

func indexMapping() mapping.IndexMapping {
	m := bleve.NewIndexMapping()
	m.DefaultAnalyzer = cjk.AnalyzerName
	d := bleve.NewDocumentStaticMapping()
	body := bleve.NewTextFieldMapping()
	body.Analyzer, body.Store, body.IncludeInAll, body.DocValues = cjk.AnalyzerName, false, false, false
	body.IncludeTermVectors = true // positions: a CJK word is a phrase of its pairs
	d.AddFieldMappingsAt("body", body)
	for _, f := range []string{"id", "conv", "reader"} {
		k := bleve.NewKeywordFieldMapping()
		k.Analyzer, k.Store, k.IncludeInAll, k.DocValues, k.IncludeTermVectors = keyword.Name, false, false, false, false
		d.AddFieldMappingsAt(f, k)
	}
	n := bleve.NewNumericFieldMapping()
	n.Store, n.IncludeInAll, n.DocValues = true, false, true // stored: an edit reindexes at the same N
	d.AddFieldMappingsAt("n", n)
	ts := bleve.NewNumericFieldMapping()
	ts.Store, ts.IncludeInAll, ts.DocValues = false, false, false
	d.AddFieldMappingsAt("ts", ts)
	m.DefaultMapping = d
	return m
}

// Open opens (or creates, or rebuilds) the index in dir over src and
// starts following src. It returns once the index is open; catching up
// with history runs in the background (CatchUp waits for it).
func Open(dir string, src Source, o Options) (*Index, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Batch <= 0 {
		o.Batch = 2000
	}
	x := &Index{src: src, log: o.Log, batch: o.Batch, wake: make(chan struct{}, 1), done: make(chan struct{})}
	idx, pos, why := openExisting(dir, src)
	if idx == nil {
		if why != "" {
			o.Log.Warn("search: rebuilding the index from history", "reason", why)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("search: remove %s: %w", dir, err)
		}
		var err error
		if idx, err = bleve.New(dir, indexMapping()); err != nil {
			return nil, fmt.Errorf("search: create %s: %w", dir, err)
		}
		if err := idx.SetInternal(keyEpoch, []byte(src.Epoch())); err != nil {
			idx.Close()
			return nil, fmt.Errorf("search: create %s: %w", dir, err)
		}
		pos = 0
	}
	x.idx = idx
	x.pos.Store(pos)
	a := idx.Mapping().AnalyzerNamed(cjk.AnalyzerName)
	if a == nil {
		idx.Close()
		return nil, errors.New("search: no cjk analyzer")
	}
	x.analyzer = a
	ctx, cancel := context.WithCancel(context.Background())
	x.stop = cancel
	go x.follow(ctx)
	return x, nil
}

// openExisting opens the index in dir if it is one of src's and not ahead
// of it; else it says why not ("" for no index at all).
func openExisting(dir string, src Source) (bleve.Index, uint64, string) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, 0, ""
	}
	idx, err := bleve.Open(dir)
	if err != nil {
		return nil, 0, fmt.Sprintf("open: %v", err)
	}
	epoch, err1 := idx.GetInternal(keyEpoch)
	p, err2 := idx.GetInternal(keyPos)
	var why string
	var pos uint64
	switch {
	case err1 != nil || err2 != nil:
		why = fmt.Sprintf("read position: %v", errors.Join(err1, err2))
	case string(epoch) != src.Epoch():
		why = fmt.Sprintf("index of history epoch %q, history is %q", epoch, src.Epoch())
	case len(p) != 0 && len(p) != 8:
		why = "malformed position"
	default:
		if len(p) == 8 {
			pos = binary.BigEndian.Uint64(p)
		}
		if head := src.JournalHead(); pos > head {
			why = fmt.Sprintf("index at journal position %d, history ends at %d", pos, head)
		}
	}
	if why != "" {
		idx.Close()
		return nil, 0, why
	}
	return idx, pos, ""
}

// Wake tells the index that history committed more (history's Committed
// callback); it never blocks.
func (x *Index) Wake() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Position is the journal position indexed so far.
func (x *Index) Position() uint64 { return x.pos.Load() }

// Close stops following and closes the index (what it indexed is kept).
func (x *Index) Close() error {
	x.closing.Do(func() {
		x.stop()
		<-x.done
		x.closeErr = x.idx.Close()
	})
	return x.closeErr
}

// followTick bounds how long a missed Wake can delay indexing.
const followTick = time.Second

func (x *Index) follow(ctx context.Context) {
	defer close(x.done)
	t := time.NewTicker(followTick)
	defer t.Stop()
	for ctx.Err() == nil {
		n, err := x.step(ctx)
		if err != nil && ctx.Err() == nil {
			x.log.Error("search: indexing failed; retrying", "pos", x.pos.Load(), "error", err)
		}
		if err == nil && n == x.batch {
			continue // more to do
		}
		select {
		case <-ctx.Done():
		case <-x.wake:
		case <-t.C:
		}
	}
}

// CatchUp indexes until the index reached history's journal head as of
// the call.
func (x *Index) CatchUp(ctx context.Context) error {
	head := x.src.JournalHead()
	for x.pos.Load() < head {
		if _, err := x.step(ctx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// step indexes up to one batch of journal entries after the position and
// records the new position in the same index batch.
func (x *Index) step(ctx context.Context) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	pos := x.pos.Load()
	changes, err := x.src.Changes(ctx, pos, x.batch)
	if err != nil || len(changes) == 0 {
		return 0, err
	}
	b := x.idx.NewBatch()
	added := map[string]float64{} // this batch's documents, by id: their N
	for _, c := range changes {
		if err := x.add(ctx, b, c, added); err != nil {
			return 0, err
		}
	}
	last := changes[len(changes)-1].N
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], last)
	b.SetInternal(keyPos, p[:])
	if err := x.idx.Batch(b); err != nil {
		return 0, fmt.Errorf("search: index batch to %d: %w", last, err)
	}
	x.pos.Store(last)
	return len(changes), nil
}

// add puts one journal entry's effect into b: a message is indexed as it
// now is (retracted ones never); an edit reindexes the message it refers
// to, a retract removes it; reactions change nothing searchable.
func (x *Index) add(ctx context.Context, b *bleve.Batch, c history.Change, added map[string]float64) error {
	m, n := c.Msg, float64(c.N)
	switch m.Type {
	case envelope.TypeRetract:
		b.Delete(docID(c.Conv, m.Ref))
		return nil
	case envelope.TypeReaction:
		return nil
	case envelope.TypeEdit:
		t, err := x.src.Lookup(ctx, c.Conv, m.Ref)
		if errors.Is(err, history.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		m = t
		var ok bool
		if n, ok = x.numberOf(docID(c.Conv, m.ID), added); !ok {
			return nil // not indexed (no text): nothing to reindex
		}
	}
	id := docID(c.Conv, m.ID)
	if m.Retracted || m.Body == "" {
		b.Delete(id)
		delete(added, id)
		return nil
	}
	added[id] = n
	return b.Index(id, doc{Body: m.Body, ID: m.ID, Conv: string(c.Conv), Reader: readers(c.Conv), N: n, TS: float64(m.TS)})
}

// numberOf is the N document id was indexed with, in this batch or before.
func (x *Index) numberOf(id string, added map[string]float64) (float64, bool) {
	if n, ok := added[id]; ok {
		return n, true
	}
	d, err := x.idx.Document(id)
	if err != nil || d == nil {
		return 0, false
	}
	var n float64
	found := false
	d.VisitFields(func(f index.Field) {
		if nf, ok := f.(*document.NumericField); ok && f.Name() == "n" {
			if v, err := nf.Number(); err == nil {
				n, found = v, true
			}
		}
	})
	return n, found
}

// Query is one search.
type Query struct {
	// Words: every one must match (see the package doc).
	Words string
	// User and Groups: the conversations searched are User's DMs and the
	// Groups (those User may read now), unless Conv names one (which the
	// caller checked User may read).
	User   string
	Groups []string
	Conv   history.ConvID
	// Before: only messages with an id below it ("": from the newest).
	Before string
	Limit  int
}

// ErrNoWords: the query has nothing to search for (only punctuation).
var ErrNoWords = errors.New("search: no words in the query")

// Search returns up to q.Limit messages matching q, newest first, as
// history now has them (the latest body of an edited one; a retracted one
// never), and whether more match.
func (x *Index) Search(ctx context.Context, q Query) ([]envelope.Message, bool, error) {
	words, err := x.words(q.Words)
	if err != nil {
		return nil, false, err
	}
	var scope query.Query
	if q.Conv != "" {
		scope = term("conv", string(q.Conv))
	} else {
		who := []query.Query{term("reader", "u:"+q.User)}
		for _, g := range q.Groups {
			who = append(who, term("reader", "g:"+g))
		}
		scope = bleve.NewDisjunctionQuery(who...)
	}
	must := append(words, scope)
	if q.Before != "" {
		// Ids start with their ts in hex: messages of the same
		// millisecond are told apart after the index answered.
		ts, err := strconv.ParseUint(q.Before[:min(12, len(q.Before))], 16, 64)
		if err != nil {
			return nil, false, fmt.Errorf("search: before %q is not a message id", q.Before)
		}
		yes, max := true, float64(ts)
		r := bleve.NewNumericRangeInclusiveQuery(nil, &max, nil, &yes)
		r.SetField("ts")
		must = append(must, r)
	}
	// Newest first by journal number, without ranking: the index sorts
	// the matches by a doc value. (Reading the newest numbers first in
	// growing windows measured 3x slower: each window's range query
	// costs more than the sort it saves.)
	all := bleve.NewConjunctionQuery(must...)
	out := []envelope.Message{}
	for from := 0; ; {
		req := bleve.NewSearchRequestOptions(all, q.Limit+1, from, false)
		req.SortBy([]string{"-n"})
		req.Score = "none"
		res, err := x.idx.SearchInContext(ctx, req)
		if err != nil {
			return nil, false, fmt.Errorf("search: %w", err)
		}
		for _, h := range res.Hits {
			conv, id, ok := parseDocID(h.ID)
			if !ok || (q.Before != "" && id >= q.Before) {
				continue
			}
			// Read back from history: a hit it no longer shows (retracted
			// a moment ago) is skipped.
			m, err := x.src.Lookup(ctx, conv, id)
			if errors.Is(err, history.ErrNotFound) || (err == nil && m.Retracted) {
				continue
			}
			if err != nil {
				return nil, false, err
			}
			if len(out) == q.Limit {
				return out, true, nil
			}
			out = append(out, m)
		}
		if len(res.Hits) <= q.Limit {
			return out, false, nil
		}
		from += len(res.Hits)
	}
}

// words is a query per word of s: a word of one term is that term, one
// of several (a CJK run's pairs, "e-mail") the phrase of them.
func (x *Index) words(s string) ([]query.Query, error) {
	var out []query.Query
	for _, w := range strings.Fields(s) {
		var terms []string
		for _, t := range x.analyzer.Analyze([]byte(w)) {
			terms = append(terms, string(t.Term))
		}
		switch len(terms) {
		case 0:
		case 1:
			out = append(out, term("body", terms[0]))
		default:
			out = append(out, bleve.NewPhraseQuery(terms, "body"))
		}
	}
	if len(out) == 0 {
		return nil, ErrNoWords
	}
	return out, nil
}

func term(field, t string) query.Query {
	q := bleve.NewTermQuery(t)
	q.SetField(field)
	return q
}
