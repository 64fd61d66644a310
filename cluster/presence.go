package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mqim/mqim/presence"
)

// Presence is the presence view of a cluster node: this node's devices (a
// presence.Tracker) plus every other node's device counts, learnt from
// their events on core NATS. A user is online while a device of theirs is
// connected to any node; Connect's first and Disconnect's last mean first
// and last anywhere, so a watcher on n1 sees a user of n2 come and go, and
// a signal is answered OFFLINE only when no node has a device of the user.
//
// Presence needs no quorum (it is not in JetStream): a node cut off from
// the others goes on with what it knows. What keeps the views alike:
//
//   - Each node numbers its changes (device counts, statuses) and sends
//     them in order with its incarnation (a random id per start); a
//     heartbeat every second carries the last number. A receiver that
//     sees a gap, a new node or a restarted one asks that node for a
//     snapshot (paged request/reply), buffering the events meanwhile.
//   - A node silent for deadAfter is dropped with its devices.
//   - Two nodes deciding at once can each see the other's device and stay
//     silent (both leave, or one leaves as the other arrives). A node that
//     withheld "offline" for that reason announces it when the other's
//     change arrives without an announcement of its own, and a node with a
//     device that hears "offline" announces "online" again; a dead node's
//     users are announced offline by the live node with the smallest id.
//     Announcements can therefore repeat, never stay wrong.
type Presence struct {
	*presence.Tracker // this node's devices, and every status seen

	n     *Node
	inc   string
	mu    sync.Mutex
	seq   uint64
	peers map[string]*peer
	// withheld: users whose last device here left while another node
	// still had one, so this node announced nothing.
	withheld map[string]bool
	changed  func(user string)
	stale    func(user string)
	subs     []*nats.Subscription
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	now      func() time.Time
}

// peer is what this node knows of another node's devices.
type peer struct {
	inc     string
	seq     uint64 // last change applied
	users   map[string]int
	seen    time.Time
	synced  bool
	syncing bool
	buf     []presMsg // events that arrived during a snapshot
}

// presMsg is one message on presSubject.
type presMsg struct {
	Node string `json:"n"`
	Inc  string `json:"i"`
	Seq  uint64 `json:"s"`
	// Kind: "d" a user's device count on Node, "s" a status Node
	// published, "h" a heartbeat (Seq: Node's last change).
	Kind   string           `json:"k"`
	User   string           `json:"u,omitempty"`
	Count  int              `json:"c,omitempty"`
	Ann    bool             `json:"a,omitempty"` // Node announced this change (online/offline)
	Status *presence.Status `json:"st,omitempty"`
}

type snapRequest struct {
	After string `json:"after"`
}

type snapEntry struct {
	User   string          `json:"u"`
	Count  int             `json:"c"`
	Status presence.Status `json:"st"`
}

type snapReply struct {
	Inc     string      `json:"i"`
	Seq     uint64      `json:"s"`
	Entries []snapEntry `json:"e"`
	More    bool        `json:"more"`
}

const (
	presSubject = "mqim.pres"
	snapSubject = "mqim.pres.snap." // + node id
	beatEvery   = time.Second
	deadAfter   = 5 * time.Second
	snapPage    = 500 // users per snapshot page: at most ~0.5 MB (NATS max_payload is 1 MB)
	// maxBuffered bounds the events held during a snapshot; past it the
	// snapshot is started again.
	maxBuffered = 100000
)

// NewPresence starts node n's presence view: it listens to the other
// nodes, heartbeats, and asks each node it hears of for its devices.
func NewPresence(n *Node) (*Presence, error) {
	p := &Presence{Tracker: presence.New(), n: n, inc: randomID(), peers: map[string]*peer{},
		withheld: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{}), now: time.Now}
	for subj, h := range map[string]nats.MsgHandler{presSubject: p.receive, snapSubject + n.ID(): p.serveSnapshot} {
		s, err := n.ev.Subscribe(subj, h)
		if err != nil {
			p.unsubscribe()
			return nil, err
		}
		if err := s.SetPendingLimits(maxBuffered, 64<<20); err != nil {
			p.unsubscribe()
			return nil, err
		}
		p.subs = append(p.subs, s)
	}
	go p.beat()
	return p, nil
}

// Wait returns once every configured peer was heard of and synced, or
// after at most d (a peer that is down only delays the start by d).
func (p *Presence) Wait(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		p.mu.Lock()
		ready := len(p.peers) >= len(p.n.cfg.Peers)
		for _, pr := range p.peers {
			ready = ready && pr.synced
		}
		p.mu.Unlock()
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// OnChange sets what is called, outside any lock, when another node's
// change (or death) decides user's presence here: the chat service
// publishes what Online and StatusOf now say. Until it is set, such
// changes only update the view.
func (p *Presence) OnChange(f func(user string)) {
	p.mu.Lock()
	p.changed = f
	p.mu.Unlock()
}

// OnStale sets what is called, outside any lock, for a user whose status
// this node learnt from a snapshot (another node published it while this
// one did not hear): the node shows it on its own devices, announcing
// nothing. Until it is set, only the view is updated.
func (p *Presence) OnStale(f func(user string)) {
	p.mu.Lock()
	p.stale = f
	p.mu.Unlock()
}

// RemoteOnline returns the users with a device on another node.
func (p *Presence) RemoteOnline() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	for _, pr := range p.peers {
		for u := range pr.users {
			seen[u] = true
		}
	}
	out := make([]string, 0, len(seen))
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// Close stops heartbeats and listening.
func (p *Presence) Close() error {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		p.unsubscribe()
	})
	return nil
}

func (p *Presence) unsubscribe() {
	for _, s := range p.subs {
		_ = s.Unsubscribe()
	}
}

// Connect implements presence.View: first is the user's first device on
// any node, as far as this node knows.
func (p *Presence) Connect(user, clientID string, conn any) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.Tracker.Devices(user)
	p.Tracker.Connect(user, clientID, conn)
	after := p.Tracker.Devices(user)
	if after == before {
		return false // the same device again (a takeover)
	}
	delete(p.withheld, user)
	first := before == 0 && p.remote(user) == 0
	p.sendLocked(presMsg{Kind: "d", User: user, Count: after, Ann: first})
	return first
}

// Disconnect implements presence.View: last is the user's last device on
// any node, as far as this node knows.
func (p *Presence) Disconnect(user, clientID string, conn any) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.Tracker.Devices(user)
	p.Tracker.Disconnect(user, clientID, conn)
	after := p.Tracker.Devices(user)
	if after == before {
		return false // a connection already replaced
	}
	last := after == 0 && p.remote(user) == 0
	if after == 0 && !last {
		p.withheld[user] = true
	}
	p.sendLocked(presMsg{Kind: "d", User: user, Count: after, Ann: last})
	return last
}

// Online implements presence.View.
func (p *Presence) Online(user string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Tracker.Devices(user)+p.remote(user) > 0
}

// Devices returns user's devices on every node.
func (p *Presence) Devices(user string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Tracker.Devices(user) + p.remote(user)
}

// SetStatus implements presence.View: the status goes to every node, so
// each answers GET /api/v1/presence alike.
func (p *Presence) SetStatus(user string, s presence.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Tracker.SetStatus(user, s)
	p.sendLocked(presMsg{Kind: "s", User: user, Status: &s})
}

// remote is user's devices on other nodes (p.mu held).
func (p *Presence) remote(user string) int {
	n := 0
	for _, pr := range p.peers {
		n += pr.users[user]
	}
	return n
}

// sendLocked numbers and publishes a change (p.mu held, so changes leave
// in their order).
func (p *Presence) sendLocked(m presMsg) {
	p.seq++
	m.Seq = p.seq
	p.publish(m)
}

func (p *Presence) publish(m presMsg) {
	m.Node, m.Inc = p.n.ID(), p.inc
	b, _ := json.Marshal(m)
	if err := p.n.ev.Publish(presSubject, b); err != nil {
		p.n.log.Warn("cluster: presence not sent to other nodes", "err", err)
	}
}

// beat heartbeats and drops silent nodes.
func (p *Presence) beat() {
	defer close(p.done)
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	p.heartbeat()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.heartbeat()
		p.mu.Lock()
		var gone []string
		for id, pr := range p.peers {
			if p.now().Sub(pr.seen) > deadAfter {
				gone = append(gone, p.dropLocked(id)...)
			}
		}
		f := p.changed
		p.mu.Unlock()
		p.run(f, gone)
	}
}

func (p *Presence) heartbeat() {
	p.mu.Lock()
	m := presMsg{Kind: "h", Seq: p.seq}
	p.mu.Unlock()
	p.publish(m)
}

// dropLocked forgets node id (dead, or restarted) and returns the users
// this node must announce offline: those left with no device anywhere,
// if this node is the smallest live id or had withheld their offline.
func (p *Presence) dropLocked(id string) []string {
	pr := p.peers[id]
	delete(p.peers, id)
	smallest := true
	for other := range p.peers {
		smallest = smallest && p.n.ID() < other
	}
	var out []string
	for u := range pr.users {
		if p.Tracker.Devices(u)+p.remote(u) == 0 && (smallest || p.withheld[u]) {
			delete(p.withheld, u)
			out = append(out, u)
		}
	}
	if len(pr.users) > 0 {
		p.n.log.Info("cluster: presence of a silent node dropped", "node", id, "users", len(pr.users))
	}
	return out
}

func (p *Presence) run(f func(string), users []string) {
	if f == nil {
		return
	}
	for _, u := range users {
		f(u)
	}
}

// receive applies another node's message.
func (p *Presence) receive(msg *nats.Msg) {
	var m presMsg
	if json.Unmarshal(msg.Data, &m) != nil || m.Node == "" || m.Node == p.n.ID() {
		return
	}
	p.mu.Lock()
	var act []string
	pr := p.peers[m.Node]
	if pr != nil && pr.inc != m.Inc {
		act = p.dropLocked(m.Node) // it restarted: what it had is gone
		pr = nil
	}
	if pr == nil {
		pr = &peer{inc: m.Inc, users: map[string]int{}}
		p.peers[m.Node] = pr
		p.heartbeatLocked() // so a node that just started hears of this one at once
	}
	pr.seen = p.now()
	switch {
	case pr.syncing:
		if m.Kind != "h" {
			pr.buf = append(pr.buf, m)
			if len(pr.buf) > maxBuffered {
				pr.buf, pr.synced = nil, false
			}
		}
	case m.Kind == "h":
		if !pr.synced || m.Seq > pr.seq {
			p.syncLocked(m.Node, pr)
		}
	case m.Seq <= pr.seq:
	case !pr.synced || m.Seq > pr.seq+1:
		p.syncLocked(m.Node, pr)
		pr.buf = append(pr.buf, m)
	default:
		act = append(act, p.applyLocked(pr, m)...)
	}
	f := p.changed
	p.mu.Unlock()
	p.run(f, act)
}

func (p *Presence) heartbeatLocked() {
	p.publish(presMsg{Kind: "h", Seq: p.seq})
}

// applyLocked applies the change that follows pr.seq and returns the users
// whose presence this node must announce again.
func (p *Presence) applyLocked(pr *peer, m presMsg) []string {
	pr.seq = m.Seq
	u := m.User
	switch m.Kind {
	case "d":
		if m.Count > 0 {
			pr.users[u] = m.Count
		} else {
			delete(pr.users, u)
		}
		if m.Ann {
			delete(p.withheld, u)
		} else if m.Count == 0 && p.withheld[u] && p.Tracker.Devices(u)+p.remote(u) == 0 {
			// Both nodes' last devices left at once: each saw the
			// other's and announced nothing.
			delete(p.withheld, u)
			return []string{u}
		}
	case "s":
		if m.Status == nil {
			return nil
		}
		p.Tracker.SetStatus(u, *m.Status)
		if m.Status.Status == "offline" {
			delete(p.withheld, u)
			if p.Tracker.Devices(u) > 0 {
				// It announced offline as a device of the user arrived
				// here: this node says online again.
				return []string{u}
			}
		}
	}
	return nil
}

// syncLocked starts fetching node id's snapshot (p.mu held).
func (p *Presence) syncLocked(id string, pr *peer) {
	pr.syncing, pr.buf = true, nil
	go p.sync(id, pr.inc)
}

// sync fetches node id's devices page by page, then applies the events
// buffered meanwhile. Device counts are absolute, so events older than a
// page change nothing once the newer ones after them are applied too.
func (p *Presence) sync(id, inc string) {
	users := map[string]int{}
	statuses := map[string]presence.Status{}
	var seq uint64
	ok := true
	for req, first := (snapRequest{}), true; ; first = false {
		b, _ := json.Marshal(req)
		msg, err := p.n.ev.Request(snapSubject+id, b, 2*time.Second)
		var r snapReply
		if err != nil || json.Unmarshal(msg.Data, &r) != nil || r.Inc != inc {
			ok = false
			break
		}
		if first {
			seq = r.Seq
		}
		for _, e := range r.Entries {
			users[e.User] = e.Count
			statuses[e.User] = e.Status
			req.After = e.User
		}
		if !r.More || len(r.Entries) == 0 {
			break
		}
	}
	p.mu.Lock()
	pr := p.peers[id]
	if pr == nil || pr.inc != inc {
		p.mu.Unlock()
		return
	}
	pr.syncing = false
	if !ok {
		// Tried again on its next heartbeat.
		pr.buf, pr.synced = nil, false
		p.mu.Unlock()
		return
	}
	var act, stale []string
	for u := range pr.users {
		if _, still := users[u]; !still && p.withheld[u] && p.Tracker.Devices(u)+p.remote(u)-pr.users[u] == 0 {
			delete(p.withheld, u)
			act = append(act, u)
		}
	}
	pr.users, pr.seq, pr.synced = users, seq, true
	for u, s := range statuses {
		if p.Tracker.StatusOf(u) != s {
			p.Tracker.SetStatus(u, s)
			stale = append(stale, u) // shown here as that node published it
		}
	}
	buf := pr.buf
	pr.buf = nil
	slices.SortFunc(buf, func(a, b presMsg) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, m := range buf {
		switch {
		case m.Seq <= pr.seq:
		case m.Seq == pr.seq+1:
			act = append(act, p.applyLocked(pr, m)...)
		default:
			p.syncLocked(id, pr) // lost in between: once more
		}
		if pr.syncing {
			break
		}
	}
	f, fs := p.changed, p.stale
	p.mu.Unlock()
	p.run(fs, stale)
	p.run(f, act)
}

// serveSnapshot answers another node's request for a page of this node's
// devices.
func (p *Presence) serveSnapshot(msg *nats.Msg) {
	var req snapRequest
	if json.Unmarshal(msg.Data, &req) != nil {
		return
	}
	p.mu.Lock()
	r := snapReply{Inc: p.inc, Seq: p.seq}
	users := p.Tracker.OnlineUsers()
	i := sort.SearchStrings(users, req.After)
	if i < len(users) && users[i] == req.After {
		i++
	}
	for _, u := range users[i:] {
		if len(r.Entries) == snapPage {
			r.More = true
			break
		}
		r.Entries = append(r.Entries, snapEntry{User: u, Count: p.Tracker.Devices(u), Status: p.Tracker.StatusOf(u)})
	}
	b, _ := json.Marshal(r)
	// Answered under the lock, so no change of a later number leaves
	// before it.
	_ = msg.Respond(b)
	p.mu.Unlock()
}

// randomID is a node's incarnation: new at every start.
func randomID() string { return rand.Text() }
