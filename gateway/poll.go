package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/mqim/mqim/imerr"
)

// GET /api/v1/poll: the long-poll transport (docs/protocol.md, "HTTP
// fallback transports").

// pollIdle is how long a poll session (its buffered ephemeral events, and
// its presence as a device) outlives its last poll.
const pollIdle = 45 * time.Second

// maxPollWait caps ?timeout=.
const maxPollWait = 55 * time.Second

type pollSession struct {
	f     *feed
	id    string
	mu    sync.Mutex
	last  time.Time     // end of the last poll
	busy  int           // polls waiting
	kick  chan struct{} // closed to end the waiting poll early
	reply sync.Mutex    // one poll reads the feed at a time
}

type polls struct {
	mu     sync.Mutex
	m      map[string]*pollSession
	byUser map[string]map[string]*pollSession // user -> id -> session
	run    sync.Once
}

func (p *polls) add(s *pollSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m, p.byUser = map[string]*pollSession{}, map[string]map[string]*pollSession{}
	}
	p.m[s.id] = s
	if p.byUser[s.f.user] == nil {
		p.byUser[s.f.user] = map[string]*pollSession{}
	}
	p.byUser[s.f.user][s.id] = s
}

// delete forgets s; the caller holds p.mu and closes s's feed after.
func (p *polls) delete(s *pollSession) {
	delete(p.m, s.id)
	if u := p.byUser[s.f.user]; u != nil {
		delete(u, s.id)
		if len(u) == 0 {
			delete(p.byUser, s.f.user)
		}
	}
}

// evictIdlePoll closes user's least recently polled session that no poll is
// waiting on, and reports whether there was one. A poll session has no
// close call, so a client that lost its id (a reloaded page) leaves it
// behind until it idles out; it is the one to give way to a new session.
func (g *Gateway) evictIdlePoll(user string) bool {
	p := &g.tr.polls
	p.mu.Lock()
	var oldest *pollSession
	var oldestLast time.Time
	for _, s := range p.byUser[user] {
		s.mu.Lock()
		idle, last := s.busy == 0, s.last
		s.mu.Unlock()
		if idle && (oldest == nil || last.Before(oldestLast)) {
			oldest, oldestLast = s, last
		}
	}
	if oldest != nil {
		p.delete(oldest)
	}
	p.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.f.close()
	return true
}

// poll serves GET /api/v1/poll. Without session it opens one and answers at
// once (retained presence, the start cursor); with one it answers as soon as
// something is there, or after timeout seconds with no events.
func (g *Gateway) poll(w http.ResponseWriter, r *http.Request, user string) error {
	q := r.URL.Query()
	wait, err := intParam(r, "timeout", 25, 0, int64(maxPollWait/time.Second))
	if err != nil {
		return err
	}
	ctx := r.Context()
	sid := q.Get("session")
	var s *pollSession
	if sid == "" {
		device, err := feedDevice(r)
		if err != nil {
			return err
		}
		f, err := g.openFeed(user, device, "poll")
		if err != nil {
			return err
		}
		cur, err := g.startCursor(ctx, user, q.Get("since"))
		if err != nil {
			f.close()
			return err
		}
		s = &pollSession{f: f, id: randomHex(16), last: time.Now(), kick: make(chan struct{})}
		g.tr.polls.add(s)
		g.tr.polls.run.Do(func() { go g.reapPolls() })
		writeJSON(w, http.StatusOK, map[string]any{"session": s.id, "cursor": cur.String(), "events": nonNil(f.take()), "more": false})
		return nil
	}
	g.tr.polls.mu.Lock()
	s = g.tr.polls.m[sid]
	g.tr.polls.mu.Unlock()
	if s == nil || s.f.user != user {
		return fail(http.StatusNotFound, imerr.NotFound, "no such poll session (expired?): open a new one")
	}
	cur, err := g.startCursor(ctx, user, q.Get("since"))
	if err != nil {
		return err
	}
	// A newer poll of the same session ends this one (a client that gave up
	// on a request and asked again).
	s.mu.Lock()
	close(s.kick)
	kick := make(chan struct{})
	s.kick = kick
	s.busy++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy--
		s.last = time.Now()
		s.mu.Unlock()
	}()
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for {
		has, err := s.f.hasChat(ctx, cur)
		if err != nil {
			return err
		}
		if has || s.f.pending() {
			break
		}
		select {
		case <-s.f.wake:
			continue
		case <-timer.C:
		case <-kick:
		case <-ctx.Done():
			return nil
		case <-g.tr.done:
		}
		break
	}
	s.reply.Lock()
	defer s.reply.Unlock()
	msgs, next, more, err := s.f.chat(ctx, cur, 100)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": s.id, "cursor": next.String(), "events": nonNil(append(msgs, s.f.take()...)), "more": more})
	return nil
}

func nonNil(e []event) []event {
	if e == nil {
		return []event{}
	}
	return e
}

// reapPolls closes poll sessions nobody polled for pollIdle (within a
// ninth of it: the sweep runs at that interval, from the configured value).
func (g *Gateway) reapPolls() {
	t := time.NewTicker(g.pollIdle() / 9)
	defer t.Stop()
	for {
		select {
		case <-g.tr.done:
			g.closePolls(func(*pollSession) bool { return true })
			return
		case <-t.C:
			now := time.Now()
			g.closePolls(func(s *pollSession) bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.busy == 0 && now.Sub(s.last) > g.pollIdle()
			})
		}
	}
}

func (g *Gateway) pollIdle() time.Duration {
	if g.o.Transport.PollIdle > 0 {
		return g.o.Transport.PollIdle
	}
	return pollIdle
}

func (g *Gateway) closePolls(expired func(*pollSession) bool) {
	var gone []*pollSession
	g.tr.polls.mu.Lock()
	for _, s := range g.tr.polls.m {
		if expired(s) {
			g.tr.polls.delete(s)
			gone = append(gone, s)
		}
	}
	g.tr.polls.mu.Unlock()
	for _, s := range gone {
		s.f.close()
	}
}
