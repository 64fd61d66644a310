// Package cluster runs the platform as several nodes on embedded NATS
// JetStream, an existing replicated engine, instead of a protocol of our
// own. See docs/cluster.md for the design; in short:
//
//   - Each node embeds a nats-server joined to the others by cluster
//     routes. The node talks to its own server in process; no other
//     client can (its loopback client port has a per-process password).
//   - The chat log is a JetStream stream replicated to cluster.replicas
//     nodes (Log). It is the system of record: a publish is acknowledged
//     once the stream holds it on a majority. Every node applies the stream
//     in order to its own Badger history, which is therefore a
//     deterministic view: the same seq per conversation, the same feed
//     positions and ids on every node, so cursors are valid everywhere.
//   - Delivery to a node's devices stays the single-node path (history's
//     Committed feed into the node's fan-out hub), since every node's view
//     commits every message. Ephemeral events (receipts, typing, signals,
//     notices) cross nodes on core NATS (Hub).
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mqim/mqim/config"
	"github.com/mqim/mqim/history"
)

// Config is the `cluster:` section of the configuration (config.Cluster).
type Config = config.Cluster

// ErrUnavailable wraps what the log cannot do now: no quorum (this node is
// in a minority, or the log's leader is being elected), so a write is
// refused rather than accepted without its replicas.
// It wraps history.ErrUnavailable (and so do the errors that wrap it).
var ErrUnavailable = fmt.Errorf("cluster: log unavailable (no quorum): %w", history.ErrUnavailable)

// Stream and subject names.
const (
	logStream    = "MQIM_LOG"
	logSubject   = "mqim.log"
	stateStream  = "MQIM_STATE"
	stateSubject = "mqim.state"
	evSubject    = "mqim.ev"
)

// Node is this process's member of the cluster: the embedded nats-server
// and connections to it.
type Node struct {
	cfg    Config
	log    *slog.Logger
	ns     *server.Server
	nc     *nats.Conn // the log: publishes and the applier's consumer
	ev     *nats.Conn // ephemeral events; no echo, so a node skips its own
	js     jetstream.JetStream
	stream jetstream.Stream // the chat log
	state  jetstream.Stream // the shared state (accounts, groups...)
	epoch  string
}

// Options tune a Node beyond its Config.
type Options struct {
	// DataDir holds the node's JetStream files (DataDir/nats).
	DataDir string
	// SyncAlways fsyncs every log write before it is acknowledged
	// (durability "batch"); otherwise nats-server syncs on its interval and
	// a write is durable by being on a majority of nodes.
	SyncAlways bool
	// Ready bounds how long Start waits for the cluster to elect the log's
	// leader (a quorum of nodes up). Default 30 s.
	Ready time.Duration
	Log   *slog.Logger
}

// Start starts the embedded server, joins the cluster and waits until the
// log is writable (a quorum of nodes is up), at most o.Ready.
func Start(ctx context.Context, cfg Config, o Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Ready <= 0 {
		o.Ready = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen port %q: %w", port, err)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	pass := hex.EncodeToString(secret)
	opts := &server.Options{
		ServerName: cfg.Node,
		// This process is the only NATS client, in process. nats-server
		// still needs a client listener for its routes to start (with
		// DontListen they never do), so it gets a random loopback port
		// guarded by a password that never leaves the process.
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		Username:   "mqim",
		Password:   pass,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "nats"),
		SyncAlways: o.SyncAlways,
		NoSigs:     true,
	}
	// A cluster of one (no peers) is a standalone JetStream server:
	// nats-server refuses a JetStream cluster without routes.
	if len(cfg.Peers) > 0 {
		opts.Cluster = server.ClusterOpts{Name: cfg.Name, Host: host, Port: p}
	}
	for _, peer := range cfg.Peers {
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: peer})
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ns.SetLoggerV2(natsLogger{o.Log.With("nats", cfg.Node)}, false, false, false)
	ns.Start()
	n := &Node{cfg: cfg, log: o.Log, ns: ns}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	if !ns.ReadyForConnections(o.Ready) {
		return nil, errors.New("cluster: embedded nats-server did not start")
	}
	if n.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.UserInfo("mqim", pass), nats.Name(cfg.Node+"-log"), nats.MaxReconnects(-1)); err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	if n.ev, err = nats.Connect("", nats.InProcessServer(ns), nats.UserInfo("mqim", pass), nats.Name(cfg.Node+"-events"), nats.NoEcho(), nats.MaxReconnects(-1)); err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, o.Ready)
	defer cancel()
	if err := n.ensureStreams(rctx); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// ensureStreams creates the two streams (or finds them) and derives the
// cluster's epoch from the log's.
func (n *Node) ensureStreams(ctx context.Context) error {
	created, err := n.ensureStream(ctx, logStream, logSubject, &n.stream)
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(n.cfg.Name + "/" + created.UTC().Format(time.RFC3339Nano)))
	n.epoch = "c" + hex.EncodeToString(sum[:6])
	_, err = n.ensureStream(ctx, stateStream, stateSubject, &n.state)
	return err
}

// ensureStream creates a stream (or finds it), retrying while the cluster
// has no meta leader yet, and returns its creation time.
func (n *Node) ensureStream(ctx context.Context, name, subject string, out *jetstream.Stream) (time.Time, error) {
	sc := jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{subject},
		Replicas: n.cfg.Replicas,
		Storage:  jetstream.FileStorage,
		// The log is the system of record: a new node rebuilds its view
		// from it, so nothing expires.
		Retention:   jetstream.LimitsPolicy,
		AllowDirect: true,
		Duplicates:  2 * time.Minute,
	}
	var created time.Time
	err := retry(ctx, func(ctx context.Context) error {
		s, err := n.js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		*out, created = s, info.Created
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("cluster: stream %s is not available (is a quorum of nodes up?): %w", name, err)
	}
	return created, nil
}

// retry calls op until it succeeds or ctx ends, each try with its own short
// deadline: a JetStream API request sent while the cluster has no meta
// leader yet is never answered.
func retry(ctx context.Context, op func(context.Context) error) error {
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return last
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Epoch is the cluster's history epoch: every node's view uses it.
func (n *Node) Epoch() string { return n.epoch }

// LeadsLog reports whether this node is the chat log's leader now (the
// node whose death stalls writes until an election; docs/cluster.md).
func (n *Node) LeadsLog() bool {
	return n.ns != nil && n.ns.JetStreamIsStreamLeader(n.ns.GlobalAccount().GetName(), logStream)
}

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.Node }

// Close leaves the cluster: connections first, then the embedded server
// (a graceful stop hands the log's leadership to another node).
func (n *Node) Close() error {
	if n.ev != nil {
		n.ev.Close()
	}
	if n.nc != nil {
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	return nil
}

// natsLogger sends nats-server's log to slog (notices at debug, since a
// healthy cluster prints many).
type natsLogger struct{ l *slog.Logger }

func (g natsLogger) Noticef(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g natsLogger) Warnf(f string, a ...any) {
	if strings.HasPrefix(f, "Plaintext passwords") {
		return // the in-process password never leaves this process
	}
	g.l.Warn(fmt.Sprintf(f, a...))
}
func (g natsLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
func (g natsLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
func (g natsLogger) Debugf(f string, a ...any) {}
func (g natsLogger) Tracef(f string, a ...any) {}
