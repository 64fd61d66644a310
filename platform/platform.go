// Package platform wires the stores, the broker and the gateway into one
// running server, and shuts them down in the order that loses nothing:
// stop taking requests, disconnect clients, finish the history writer, then
// close the databases.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/broker"
	"github.com/mqim/mqim/cluster"
	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/gateway"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/kvstore"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/profiles"
	"github.com/mqim/mqim/quota"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/registry"
	"github.com/mqim/mqim/requests"
	"github.com/mqim/mqim/search"
	"github.com/mqim/mqim/userlists"
)

// Platform is a running server.
type Platform struct {
	Config   config.Config
	Log      *slog.Logger
	DB       *badger.DB
	Space    *kvstore.Space
	Accounts *accounts.Store
	Groups   *groups.Store
	Blocks   *userlists.List
	Contacts *userlists.List
	Profiles *profiles.Store
	Requests *requests.Store
	History  *history.Badger
	// Search is the message search index over History.
	Search   *search.Index
	Broker   *broker.Broker
	Hub      *fanout.Local
	IM       *im.Service
	Policy   *acl.Policy
	Metrics  *metrics.Metrics
	Gateway  *gateway.Gateway
	HTTPAddr net.Addr
	MQTTAddr net.Addr
	// Registry lists the live nodes (single node: in memory, this one).
	Registry registry.Registry
	// Cluster is this node's member of a cluster (nil: a single node);
	// then chat is written through ClusterLog and History is its view.
	Cluster      *cluster.Node
	ClusterLog   *cluster.Log
	clusterHub   *cluster.Hub
	clusterState *cluster.State
	clusterPres  *cluster.Presence
	served       chan error
	stopBeat     context.CancelFunc
	beatDone     chan struct{}
	stopGC       context.CancelFunc
	gcDone       chan struct{}
}

// Stores opens only the data stores (for CLI commands that edit data offline).
type Stores struct {
	DB       *badger.DB
	Space    *kvstore.Space
	Accounts *accounts.Store
	Groups   *groups.Store
	Blocks   *userlists.List
	Contacts *userlists.List
	Profiles *profiles.Store
	Requests *requests.Store
}

// changed takes in a key of the shared state another node wrote.
func (st *Stores) changed(k []byte) {
	st.Accounts.Changed(k)
	st.Groups.Changed(k)
	st.Blocks.Changed(k)
	st.Contacts.Changed(k)
	st.Profiles.Changed(k)
}

// freeSpace measures the free space of the data dir (tests replace it).
var freeSpace = kvstore.StatFree

// OpenStores opens the database in cfg.Data.
func OpenStores(cfg config.Config, log *slog.Logger) (*Stores, error) {
	db, space, err := openDB(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := openStores(cfg, db, space, nil, log)
	if err != nil {
		db.Close()
	}
	return st, err
}

// openDB opens the database in cfg.Data.
func openDB(cfg config.Config, log *slog.Logger) (*badger.DB, *kvstore.Space, error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("platform: data dir: %w", err)
	}
	space := kvstore.NewSpace(cfg.Data, uint64(cfg.StorageReserve), freeSpace, log)
	// On a full disk Badger cannot open for writing at all (it writes a
	// lock file and a new memtable), so start read-only and serve reads.
	readOnly := errors.Is(space.Check(), kvstore.ErrFull)
	if readOnly {
		space.Pin()
		log.Error("disk below its free-space reserve at start: serving read-only; free space and restart to accept writes", "path", cfg.Data)
	}
	db, err := kvstore.Open(filepath.Join(cfg.Data, "im"), kvstore.Options{SyncWrites: cfg.Durability == "batch", Identity: true, ReadOnly: readOnly}, log)
	if err != nil {
		return nil, nil, err
	}
	return db, space, nil
}

// openStores opens the stores over db; w commits their changes (nil: db
// itself; a cluster node's replicated state).
func openStores(cfg config.Config, db *badger.DB, space *kvstore.Space, w kvstore.Writer, log *slog.Logger) (*Stores, error) {
	lim := cfg.Limits
	acc, err := accounts.Open(db, accounts.Options{TokenTTL: cfg.TokenTTL, Space: space, Writer: w,
		KDFLimits:     accounts.KDFLimits{Slots: lim.KDFSlots, Queue: lim.KDFQueue, Wait: lim.KDFWait},
		PasswordCache: accounts.PasswordCache{TTL: lim.PasswordCacheTTL, MaxEntries: lim.PasswordCacheSize},
		Throttle: ratelimit.NewLogins(ratelimit.LoginLimits{IPRate: lim.LoginIPRate, IPBurst: lim.LoginIPBurst,
			BackoffMax: lim.LoginBackoffMax, AccountRate: lim.LoginAccountRate, AccountBurst: lim.LoginAccountBurst})})
	if err != nil {
		return nil, err
	}
	grp, err := groups.Open(db, groups.Limits{Owned: cfg.Limits.GroupsOwnedPerUser, Memberships: cfg.Limits.GroupsPerUser}, space, w)
	if err != nil {
		return nil, err
	}
	bl, err := userlists.Open(db, userlists.Blocks, cfg.Limits.BlocksPerUser, space, w)
	if err != nil {
		return nil, err
	}
	ct, err := userlists.Open(db, userlists.Contacts, cfg.Limits.ContactsPerUser, space, w)
	if err != nil {
		return nil, err
	}
	pf, err := profiles.Open(db, space, w)
	if err != nil {
		return nil, err
	}
	rq := requests.Open(db, w, cfg.Limits.RequestsPerUser, space)
	return &Stores{DB: db, Space: space, Accounts: acc, Groups: grp, Blocks: bl, Contacts: ct, Profiles: pf, Requests: rq}, nil
}

// Start opens everything and starts serving.
func Start(cfg config.Config, log *slog.Logger) (*Platform, error) {
	db, space, err := openDB(cfg, log)
	if err != nil {
		return nil, err
	}
	p := &Platform{Config: cfg, Log: log, DB: db, Space: space, served: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			p.Close(context.Background())
		}
	}()
	var w kvstore.Writer // the shared state's writer: nil, db itself
	var (
		openMu   sync.Mutex
		caughtUp bool
		opened   *Stores  // once open, they hear of other nodes' changes
		early    [][]byte // changes applied before that
	)
	var epoch string
	if cfg.Cluster != nil {
		if p.Cluster, err = cluster.Start(context.Background(), *cfg.Cluster, cluster.Options{DataDir: cfg.Data, SyncAlways: cfg.Durability == "batch", Log: log}); err != nil {
			return nil, err
		}
		epoch = p.Cluster.Epoch()
		if p.clusterState, err = cluster.OpenState(p.Cluster, db); err != nil {
			return nil, err
		}
		// Caught up before the stores open, so they load the cluster's
		// accounts and groups; later changes from other nodes go to
		// their caches through Changed.
		p.clusterState.Changed = func(k []byte) {
			openMu.Lock()
			defer openMu.Unlock()
			switch {
			case !caughtUp:
				return // the stores open after the catch-up and load it
			case opened == nil:
				// Applied while the stores load: taken in once they are.
				early = append(early, k)
				return
			}
			opened.changed(k)
		}
		if err := p.clusterState.Follow(context.Background(), 60*time.Second); err != nil {
			return nil, err
		}
		openMu.Lock()
		caughtUp = true
		openMu.Unlock()
		w = p.clusterState
	}
	st, err := openStores(cfg, db, space, w, log)
	if err != nil {
		return nil, err
	}
	openMu.Lock()
	opened = st
	for _, k := range early {
		st.changed(k)
	}
	openMu.Unlock()
	p.Accounts, p.Groups, p.Blocks, p.Contacts, p.Profiles, p.Requests = st.Accounts, st.Groups, st.Blocks, st.Contacts, st.Profiles, st.Requests
	local := fanout.NewLocal(nil) // routed into the broker once it exists
	var hub fanout.Hub = local
	// The search index follows this node's history (a cluster node's
	// view): woken by each commit, caught up from the journal at start.
	var index atomic.Pointer[search.Index]
	committed := func(a []history.Appended) {
		local.Committed(a)
		if x := index.Load(); x != nil {
			x.Wake()
		}
	}
	if p.History, err = history.OpenBadger(db, history.BadgerOptions{Space: space, Committed: committed, Epoch: epoch}); err != nil {
		return nil, err
	}
	if p.Search, err = search.Open(filepath.Join(cfg.Data, "search"), p.History, search.Options{Log: log}); err != nil {
		return nil, err
	}
	index.Store(p.Search)
	// What the chat service writes through: the node's store, or the
	// cluster's log that every node's store applies.
	var chatLog history.Store = p.History
	if p.Cluster != nil {
		p.ClusterLog = cluster.OpenLog(p.Cluster, p.History)
		chatLog = p.ClusterLog
		if p.clusterHub, err = cluster.NewHub(p.Cluster, local); err != nil {
			return nil, err
		}
		hub = p.clusterHub
	}
	admins := map[string]bool{}
	for _, a := range cfg.Admins {
		admins[a] = true
	}
	p.Policy = &acl.Policy{Members: p.Groups, Accounts: p.Accounts, Blocks: p.Blocks, Contacts: p.Contacts, ContactsOnly: func(u string) bool {
		pol := p.Profiles.Get(u).DMPolicy
		if pol == "" {
			pol = cfg.DMPolicy
		}
		return pol == profiles.DMContacts
	}, Admins: admins, Role: func(u string) string {
		k, err := p.Accounts.Kind(u)
		if err != nil {
			return ""
		}
		return k
	}}
	rules, err := acl.CompileRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	p.Policy.SetRules(rules)
	mounts, err := acl.CompileMounts(cfg.Mounts)
	if err != nil {
		return nil, err
	}
	p.Policy.SetMounts(mounts)
	m := metrics.New()
	p.Metrics = m
	var pres presence.View = presence.New()
	if p.Cluster != nil {
		if p.clusterPres, err = cluster.NewPresence(p.Cluster); err != nil {
			return nil, err
		}
		pres = p.clusterPres
	}
	svc := im.New(im.Deps{
		Log: log, Accounts: p.Accounts, Groups: p.Groups, History: chatLog, Presence: pres,
		Policy: p.Policy, Metrics: m, Limits: envelope.Limits{BodyBytes: cfg.BodyLimit}, Now: time.Now,
		PublishRate: ratelimit.NewBuckets(cfg.Limits.PublishRate, cfg.Limits.PublishBurst, nil),
		Hub:         hub, Contacts: p.Contacts, Requests: p.Requests,
	})
	p.IM = svc
	d := &hooks.Deps{
		Log: log, Accounts: p.Accounts, Policy: p.Policy, Metrics: m, IM: svc,
		Keys: hooks.NewKeyBindings(), Mounts: hooks.NewMountTable(),
		Retained: quota.NewRetained(cfg.Limits.RetainedPerUser, cfg.Limits.RetainedBytesPerUser),
		Space:    st.Space,
	}
	p.Broker, err = broker.New(broker.Options{
		MQTTAddr: cfg.MQTT, DataDir: cfg.Data, Epoch: p.History.Epoch(), SessionExpiry: cfg.SessionExpiry,
		MaxInflight: cfg.MaxInflight, WritesPending: cfg.WritesPending, Log: log, Retained: st.DB,
		Cursors: st.DB, History: p.History, Hub: hub, Window: cfg.DeliveryWindow,
		ConnLimits:     connLimits(cfg),
		ConnectTimeout: cfg.Limits.ConnectTimeout, MaxKeepalive: cfg.Limits.MaxKeepalive,
		Guard: broker.GuardLimits{TopicLevels: cfg.Limits.TopicLevels, TopicBytes: cfg.Limits.TopicBytes,
			Subscriptions: cfg.Limits.Subscriptions},
	}, d)
	if err != nil {
		return nil, err
	}
	local.SetRouter(broker.Router(p.Broker.Server))
	p.Hub = local
	p.MQTTAddr = p.Broker.MQTTAddr()
	if p.Cluster != nil {
		if p.Registry, err = cluster.NewRegistry(context.Background(), p.Cluster, nodeTTL, nil); err != nil {
			return nil, err
		}
	} else {
		p.Registry = registry.NewMemory(nodeTTL, nil)
	}
	var health func() map[string]any
	if p.Cluster != nil {
		health = func() map[string]any {
			return map[string]any{"node": p.Cluster.ID(), "log_leader": p.Cluster.LeadsLog()}
		}
	}
	p.Gateway = gateway.New(gateway.Options{
		Log: log, Health: health, Accounts: p.Accounts, Groups: p.Groups, History: p.History, Presence: pres,
		Policy: p.Policy, Blocks: p.Blocks, Contacts: p.Contacts, Profiles: p.Profiles, Directory: cfg.Directory, DMPolicy: cfg.DMPolicy,
		DirectoryRate: ratelimit.NewBuckets(cfg.Limits.DirectoryRate, cfg.Limits.DirectoryBurst, nil),
		Search:        p.Search, SearchRate: ratelimit.NewBuckets(cfg.Limits.SearchRate, cfg.Limits.SearchBurst, nil),
		Metrics: m, WS: p.Broker.WS, AllowedOrigins: cfg.AllowedOrigins, OpenRegistration: cfg.OpenRegistration,
		AdminToken: cfg.AdminToken, MQTTAddr: p.MQTTAddr.String(), Now: time.Now, ICEServers: cfg.ICEServers, BodyBytes: cfg.BodyLimit,
		KeyRevoked:   func(keyID string) { p.Broker.DisconnectKey(keyID) },
		TokenRevoked: func(tokenID string) { p.Broker.DisconnectToken(tokenID) },
		UserRevoked:  func(user string) { p.Broker.DisconnectUser(user) },
		Transport: gateway.TransportOptions{IM: svc, Hub: hub, Broker: p.Broker.Server, Registry: p.Registry,
			NodeID: nodeID(cfg), Limits: connLimits(cfg), PollIdle: cfg.Limits.PollIdle,
			StreamsPerUser: cfg.Limits.StreamsPerUser, TicketsPerUser: cfg.Limits.TicketsPerUser},
	})
	if p.HTTPAddr, err = p.Gateway.Listen(cfg.HTTP); err != nil {
		return nil, fmt.Errorf("platform: listen http %s: %w", cfg.HTTP, err)
	}
	if p.clusterPres != nil {
		// Knowing the other nodes' devices before the broker starts, so
		// its restored presence is judged against the whole cluster.
		p.clusterPres.Wait(context.Background(), 3*time.Second)
	}
	if err := p.Broker.Start(); err != nil {
		return nil, err
	}
	if p.clusterPres != nil {
		// This node's retained presence is older than what the users
		// online elsewhere published: shown here, not announced again.
		show := func(u string) { svc.ShowPresence(local, u) }
		p.clusterPres.OnChange(svc.RefreshPresence)
		p.clusterPres.OnStale(show)
		for _, u := range p.clusterPres.RemoteOnline() {
			show(u)
		}
	}
	go func() { p.served <- p.Gateway.Serve() }()
	p.startBeat()
	gcCtx, stopGC := context.WithCancel(context.Background())
	p.stopGC, p.gcDone = stopGC, make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { kvstore.RunGC(gcCtx, p.DB, 5*time.Minute, log) })
	bg.Go(func() { p.Space.Run(gcCtx, time.Second) })
	go func() { bg.Wait(); close(p.gcDone) }()
	ok = true
	return p, nil
}

// Reload applies the reloadable parts of cfg (the operator ACL rules and
// mounts): new subscriptions, publishes and every delivery are judged by
// the new rules at once; no connection is dropped. Mounts apply to
// connections made after the reload.
func (p *Platform) Reload(cfg config.Config) error {
	rules, err := acl.CompileRules(cfg.Rules)
	if err != nil {
		return err
	}
	mounts, err := acl.CompileMounts(cfg.Mounts)
	if err != nil {
		return err
	}
	p.Policy.SetRules(rules)
	p.Policy.SetMounts(mounts)
	return nil
}

// Served reports the HTTP server's exit.
func (p *Platform) Served() <-chan error { return p.served }

// Close shuts everything down; it is safe to call on a partly started Platform.
func (p *Platform) Close(ctx context.Context) error {
	var errs []error
	if p.stopGC != nil {
		p.stopGC()
		<-p.gcDone
	}
	if p.stopBeat != nil {
		p.stopBeat()
		<-p.beatDone
	}
	if p.Gateway != nil {
		errs = append(errs, p.Gateway.Shutdown(ctx))
	}
	errs = append(errs,
		closeSet(p.Broker),
		closeSet(p.clusterPres),
		closeSet(p.clusterHub),
		closeSet(p.ClusterLog),
		closeSet(p.Search),
		closeSet(p.History),
		closeSet(p.clusterState),
		closeSet(p.Cluster),
		closeSet(p.DB),
	)
	return errors.Join(errs...)
}

// closeSet closes c unless it was never set; the arguments of one call are
// evaluated in order, so Close shuts the parts down in the order listed.
func closeSet[T any, P interface {
	*T
	Close() error
}](c P) error {
	if c == nil {
		return nil
	}
	return c.Close()
}
