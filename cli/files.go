package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pion/webrtc/v3"

	"github.com/mqim/mqim/filexfer"
	"github.com/mqim/mqim/imclient"
	"github.com/mqim/mqim/p2p"
	"github.com/mqim/mqim/roap"
	"github.com/mqim/mqim/topic"
)

// Exit codes of send-file and recv-files.
const (
	exitOK       = 0 // every file arrived and its SHA-256 was verified
	exitFailed   = 1 // a transfer failed (I/O, hash mismatch, connection lost) or the server refused us
	exitUsage    = 2 // bad flags or arguments
	exitNoPeer   = 3 // the peer is offline, did not answer, or no connection could be made
	exitDeclined = 4 // the peer declined or cancelled a file
)

// FileMessageType is the chat message type that records a transfer.
const FileMessageType = "file"

// FileMeta is the meta of a "file" chat message.
type FileMeta struct {
	Name   string `json:"name"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
	MIME   string `json:"mime"`
}

// xferFlags are the flags both file commands share.
type xferFlags struct {
	http, user, password, device string
	ice, iceUser, iceCred        string
	loopback                     bool
	timeout                      time.Duration
}

func newXferFlags(name, device string, stderr io.Writer) (*flag.FlagSet, *xferFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &xferFlags{}
	fs.StringVar(&f.http, "http", envDefault("MQIM_URL", "http://127.0.0.1:8080"), "server base URL (env MQIM_URL)")
	fs.StringVar(&f.user, "user", os.Getenv("MQIM_USER"), "user id (env MQIM_USER)")
	fs.StringVar(&f.password, "password", os.Getenv("MQIM_PASSWORD"), "password or token (env MQIM_PASSWORD)")
	fs.StringVar(&f.device, "device", device, "device name (client id USER:DEVICE)")
	fs.StringVar(&f.ice, "ice", os.Getenv("MQIM_ICE_SERVERS"), "STUN/TURN URLs, comma-separated, replacing the server's ice_servers (env MQIM_ICE_SERVERS)")
	fs.StringVar(&f.iceUser, "ice-username", os.Getenv("MQIM_ICE_USERNAME"), "TURN user name for --ice (env MQIM_ICE_USERNAME)")
	fs.StringVar(&f.iceCred, "ice-credential", os.Getenv("MQIM_ICE_CREDENTIAL"), "TURN credential for --ice (env MQIM_ICE_CREDENTIAL)")
	fs.BoolVar(&f.loopback, "loopback", os.Getenv("MQIM_ICE_LOOPBACK") == "1", "also offer 127.0.0.1 candidates (Go peers on a host with no other interface; browsers refuse them) (env MQIM_ICE_LOOPBACK=1)")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up after this long (0: never)")
	return fs, f
}

func envDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// endpoint is a signed-in device with a WebRTC peer signalling over MQTT.
type endpoint struct {
	client *imclient.Client
	peer   *p2p.Peer
	user   string
}

// iceServers returns the --ice servers, or else what the server advertises.
func (f *xferFlags) iceServers(ctx context.Context, c *imclient.Client) ([]webrtc.ICEServer, error) {
	if f.ice != "" {
		var urls []string
		for _, u := range strings.Split(f.ice, ",") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		return []webrtc.ICEServer{{URLs: urls, Username: f.iceUser, Credential: f.iceCred}}, nil
	}
	var conn struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"ice_servers"`
	}
	if err := c.API(ctx, "GET", "/api/v1/connect", nil, &conn); err != nil {
		return nil, err
	}
	var out []webrtc.ICEServer
	for _, s := range conn.ICEServers {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out, nil
}

// open signs in, connects over MQTT and starts a peer configured by cfg
// (Self, Signaller and Settings are filled in here).
func (f *xferFlags) open(ctx context.Context, cfg p2p.Config) (*endpoint, error) {
	if f.user == "" || f.password == "" {
		return nil, errors.New("--user and --password are required")
	}
	sig := p2p.NewMQTTSignaller(f.user)
	c, err := imclient.Dial(ctx, imclient.Options{
		HTTP: strings.TrimRight(f.http, "/"), User: f.user, Password: f.password, Device: f.device,
		OnEvent: func(t string, b []byte) { _ = sig.HandleEvent(t, b) },
	})
	if err != nil {
		return nil, err
	}
	sig.SetClient(c.MQTT())
	ice, err := f.iceServers(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	st := p2p.DefaultSettings()
	if f.loopback {
		st = p2p.LoopbackSettings()
	}
	st.ICEServers = ice
	cfg.Self, cfg.Signaller, cfg.Settings = f.user, sig, &st
	p := p2p.NewPeer(cfg)
	sig.Bind(p)
	return &endpoint{client: c, peer: p, user: f.user}, nil
}

func (e *endpoint) close() {
	e.peer.Close()
	e.client.Close()
}

// commandContext ends with parent, on SIGINT/SIGTERM and after timeout (if set).
func commandContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	return tctx, func() { cancel(); stop() }
}

// exitFor maps why a session could not be used to an exit code.
func exitFor(err error) int {
	var se *p2p.SignalError
	switch {
	case errors.As(err, &se) && se.Type == roap.ErrorRefused:
		return exitDeclined
	case errors.As(err, &se), errors.Is(err, context.DeadlineExceeded):
		return exitNoPeer
	}
	return exitFailed
}

// resultExit maps a failed transfer to an exit code.
func resultExit(r filexfer.Result) int {
	if r.Remote && (errors.Is(r.Err, filexfer.ErrDeclined) || errors.Is(r.Err, filexfer.ErrCancelled) ||
		errors.Is(r.Err, filexfer.ErrTooLarge) || errors.Is(r.Err, filexfer.ErrBusy)) {
		return exitDeclined
	}
	return exitFailed
}

type sendItem struct {
	path string
	file *os.File
	size int64
	info filexfer.FileInfo
}

// sendFile implements `mqim send-file`.
func sendFile(args []string, stdout, stderr io.Writer) int {
	fs, f := newXferFlags("send-file", "send-file", stderr)
	to := fs.String("to", "", "user to send to")
	files, err := parseArgs(fs, sendUsage, args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "mqim:", err)
		return exitUsage
	}
	if *to == "" || len(files) == 0 || !topic.ValidUser(*to) {
		fmt.Fprintln(stderr, sendUsage)
		return exitUsage
	}
	defer p2p.TuneGC()()
	var items []*sendItem
	for _, path := range files {
		fh, err := os.Open(path)
		if err == nil {
			var st os.FileInfo
			if st, err = fh.Stat(); err == nil && !st.Mode().IsRegular() {
				err = errors.New("not a regular file")
			}
			if err == nil {
				items = append(items, &sendItem{path: path, file: fh, size: st.Size()})
				continue
			}
			fh.Close()
		}
		fmt.Fprintf(stderr, "mqim: %s: %v\n", path, err)
		return exitUsage
	}
	defer func() {
		for _, it := range items {
			it.file.Close()
		}
	}()

	ctx, cancel := commandContext(context.Background(), f.timeout)
	defer cancel()
	bar := newProgressBar(stderr)
	results := make(chan filexfer.Result, len(items))
	ep, err := f.open(ctx, p2p.Config{
		Accept: func(string) bool { return false }, // this device only sends
		// A dropped connection is offered again and the transfer resumes.
		AutoReconnect: true,
		Transfer: func(*p2p.Session) filexfer.Config {
			return filexfer.Config{OnProgress: bar.update, OnDone: func(r filexfer.Result) { bar.done(r); results <- r }}
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return exitFailed
	}
	defer ep.close()

	// ICE with no working candidate pair may never fail by itself: give the
	// connection a bound, and say what can be done about it.
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	s, err := ep.peer.Dial(dctx, *to)
	dcancel()
	if err != nil {
		fmt.Fprintf(stderr, "mqim: cannot reach %s: %v\n", *to, err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			addrs, _ := net.InterfaceAddrs()
			fmt.Fprintln(stderr, "mqim:", noPathHint(routable(addrs), f.loopback))
		}
		return exitFor(err)
	}
	defer s.Close()
	byID := map[string]*sendItem{}
	for _, it := range items {
		name := filepath.Base(it.path)
		typ := mime.TypeByExtension(filepath.Ext(name))
		if typ == "" {
			typ = "application/octet-stream"
		}
		if it.info, err = s.Engine().SendFile(name, typ, it.file, it.size); err != nil {
			fmt.Fprintln(stderr, "mqim:", err)
			return exitFailed
		}
		byID[it.info.ID] = it
	}
	code := exitOK
	for pending := len(items); pending > 0; pending-- {
		select {
		case r := <-results:
			if r.Err != nil {
				code = max(code, resultExit(r))
				continue
			}
			fmt.Fprintf(stdout, "sent %s %d %x\n", quoteName(r.File.Name), r.File.Size, r.File.SHA256)
			if err := postFileMessage(ctx, ep.client, ep.user, *to, r.File); err != nil {
				fmt.Fprintf(stderr, "mqim: record %s in the chat: %v\n", r.File.Name, err)
				code = max(code, exitFailed)
			}
		case <-s.Done():
			fmt.Fprintf(stderr, "mqim: session with %s ended: %v\n", *to, s.Err())
			return max(code, exitFailed)
		case <-ctx.Done():
			for id := range byID {
				_ = s.Engine().Cancel(id)
			}
			fmt.Fprintln(stderr, "mqim:", ctx.Err())
			return max(code, exitFailed)
		}
	}
	return code
}

// dialTimeout bounds the wait for a session's data channel to open.
const dialTimeout = 30 * time.Second

// noPathHint says why a connection may not have formed, and what to do.
func noPathHint(routableAddr, loopback bool) string {
	h := "no direct network path; the operator can configure a TURN server (ice_servers), or pass one with --ice"
	if !routableAddr && !loopback {
		h += "; this host has only loopback addresses: between Go peers on it, try --loopback"
	}
	return h
}

// routable reports whether addrs hold an address other than loopback and
// link-local, which ICE host candidates need.
func routable(addrs []net.Addr) bool {
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() && !ipn.IP.IsUnspecified() {
			return true
		}
	}
	return false
}

// postFileMessage records a delivered file in the DM with peer.
func postFileMessage(ctx context.Context, c *imclient.Client, me, peer string, fi filexfer.FileInfo) error {
	meta, _ := json.Marshal(FileMeta{Name: fi.Name, Size: fi.Size, SHA256: hex.EncodeToString(fi.SHA256[:]), MIME: fi.MIME})
	msg, _ := json.Marshal(map[string]any{"cid": imclient.NewCID(), "type": FileMessageType, "body": fi.Name, "meta": json.RawMessage(meta)})
	return c.Publish(ctx, topic.Topic{Kind: topic.DM, Owner: peer, Peer: me}.String(), msg)
}

// recvLimits are what recv-files takes: from whom, how large, how many at once.
type recvLimits struct {
	from        map[string]bool // users whose sessions are answered; nil: anyone
	maxSize     uint64          // 0: no limit
	maxOffers   int             // files being received at once, all peers; 0: no limit
	maxPerPeer  int             // files being received at once from one peer; 0: no limit
	idleTimeout time.Duration   // session down / file without data this long: given up
}

// recvState tracks the files recv-files is writing.
type recvState struct {
	dir    string
	limits recvLimits
	stderr io.Writer
	mu     sync.Mutex
	files  map[string]*recvFile // file id -> file being received
	peers  map[string]int       // peer -> files being received from it
	why    map[string]string    // file id -> why offer refuses it, until its Result is reported
}

// recvFile is a Sink: a temporary file in dir that Commit, called by the
// engine once the SHA-256 has verified and before the sender is told the
// file arrived, syncs and links under its final name.
type recvFile struct {
	*os.File        // set under recvState.mu (the engine may close the session while it is created)
	dir, name, peer string
	stderr          io.Writer
	path            string // the final path, once committed
}

// Commit implements filexfer.Committer.
func (f *recvFile) Commit() error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	path, err := placeFile(f.dir, f.name, f.File.Name())
	if path == "" {
		return err
	}
	f.path = path
	if err != nil { // saved under its name; only the temporary link is left behind
		fmt.Fprintf(f.stderr, "mqim: %v\n", err)
	}
	return syncDir(f.dir) // the new directory entry survives a crash
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// stringsFlag is a flag that may be repeated and takes comma-separated values.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*s = append(*s, x)
		}
	}
	return nil
}

// sizeFlag is a byte count written as 123, 100K, 100M, 2G or 1T (binary
// multiples; a trailing "B" or "iB" is allowed).
type sizeFlag uint64

func (s *sizeFlag) String() string { return humanBytes(float64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(v)), "B"), "I")
	mult := uint64(1)
	if k := len(t) - 1; k >= 0 {
		if i := strings.IndexByte("KMGT", t[k]); i >= 0 {
			mult, t = 1<<(10*(i+1)), t[:k]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n > filexfer.MaxFileSize/mult {
		return 0, fmt.Errorf("size %q: want bytes, or a number with K, M, G or T (KiB, MiB, GiB, TiB) up to 2^53-1 bytes", v)
	}
	return n * mult, nil
}

const sendUsage = "usage: mqim send-file --http URL --user U --password P --to PEER FILE..."

const recvUsage = "usage: mqim recv-files --http URL --user U --password P (--from PEER[,PEER...] | --accept-anyone) --dir DIR [--count N] [--max-size 4G]"

// recvFiles implements `mqim recv-files`.
func recvFiles(args []string, stdout, stderr io.Writer) int {
	return recvFilesContext(context.Background(), args, stdout, stderr)
}

// recvFilesContext is recvFiles, stopping (with exit 0) when ctx ends.
func recvFilesContext(parent context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newXferFlags("recv-files", "recv-files", stderr)
	dir := fs.String("dir", ".", "directory to write received files to")
	count := fs.Int("count", 0, "exit after this many files (0: run until interrupted)")
	var from stringsFlag
	fs.Var(&from, "from", "accept files from these users only (comma-separated or repeated); this or --accept-anyone is required")
	anyone := fs.Bool("accept-anyone", false, "accept files from any user")
	maxSize := sizeFlag(4 << 30)
	fs.Var(&maxSize, "max-size", "refuse files larger than this (e.g. 100M, 2G; 0: no limit)")
	maxOffers := fs.Int("max-offers", 16, "files received at once, from all peers; more are refused (0: no limit)")
	maxPerPeer := fs.Int("max-offers-per-peer", 4, "files received at once from one peer; more are refused (0: no limit)")
	idle := fs.Duration("idle-timeout", 2*time.Minute, "give up a file that got no data, and a session whose connection was down, for this long; partial files are removed")
	extra, err := parseArgs(fs, recvUsage, args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "mqim:", err)
		return exitUsage
	}
	if len(extra) != 0 || *count < 0 || *maxOffers < 0 || *maxPerPeer < 0 || *idle <= 0 {
		fmt.Fprintln(stderr, recvUsage)
		return exitUsage
	}
	lim := recvLimits{maxSize: uint64(maxSize), maxOffers: *maxOffers, maxPerPeer: *maxPerPeer, idleTimeout: *idle}
	switch {
	case *anyone && len(from) > 0:
		fmt.Fprintln(stderr, "mqim: --from and --accept-anyone exclude each other\n"+recvUsage)
		return exitUsage
	case !*anyone && len(from) == 0:
		fmt.Fprintln(stderr, "mqim: say whose files to accept: --from PEER[,PEER...] (or --accept-anyone, which lets any user of the server write files into --dir)\n"+recvUsage)
		return exitUsage
	case !*anyone:
		lim.from = map[string]bool{}
		for _, u := range from {
			if !topic.ValidUser(u) {
				fmt.Fprintf(stderr, "mqim: --from %q is not a user id\n", u)
				return exitUsage
			}
			lim.from[u] = true
		}
	}
	defer p2p.TuneGC()()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return exitFailed
	}
	ctx, cancel := commandContext(parent, f.timeout)
	defer cancel()
	bar := newProgressBar(stderr)
	rs := &recvState{dir: *dir, limits: lim, stderr: stderr, files: map[string]*recvFile{}, peers: map[string]int{}, why: map[string]string{}}
	results := make(chan filexfer.Result, 16)
	ep, err := f.open(ctx, p2p.Config{
		Accept:      func(peer string) bool { return lim.from == nil || lim.from[peer] },
		IdleTimeout: lim.idleTimeout,
		Transfer: func(s *p2p.Session) filexfer.Config {
			return filexfer.Config{
				StallTimeout: lim.idleTimeout,
				OnOffer: func(fi filexfer.FileInfo) {
					// Accept and Refuse send frames: not inside the engine's callback.
					go rs.offer(s, fi)
				},
				OnProgress: bar.update,
				OnDone: func(r filexfer.Result) {
					path, ours := rs.finish(r)
					if !ours {
						rs.refused(s.Peer(), r)
						return
					}
					bar.done(r)
					if r.Err == nil {
						fmt.Fprintf(stdout, "received %s %d %x %s\n", quoteName(r.File.Name), r.File.Size, r.File.SHA256, quoteName(path))
					}
					select {
					case results <- r:
					case <-ctx.Done():
					}
				},
			}
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return exitFailed
	}
	defer ep.close()
	fmt.Fprintf(stderr, "waiting for files for %s in %s\n", f.user, *dir)
	code := exitOK
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case r := <-results:
			if r.Err != nil {
				code = max(code, exitFailed)
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprintln(stderr, "mqim: timed out")
				return max(code, exitFailed)
			}
			return code
		}
	}
	return code
}

// offer takes an offered file within the limits, into a temporary file,
// or refuses it and tells the sender why.
func (rs *recvState) offer(s *p2p.Session, fi filexfer.FileInfo) {
	peer := s.Peer()
	refuse := func(reason filexfer.CancelReason, why string) {
		rs.mu.Lock()
		rs.why[fi.ID] = why
		rs.mu.Unlock()
		if s.Engine().Refuse(fi.ID, reason) != nil { // ended meanwhile: no Result to come
			rs.mu.Lock()
			delete(rs.why, fi.ID)
			rs.mu.Unlock()
		}
	}
	if lim := rs.limits.maxSize; lim > 0 && fi.Size > lim {
		refuse(filexfer.ReasonTooLarge, fmt.Sprintf("larger than --max-size %s", humanBytes(float64(lim))))
		return
	}
	rs.mu.Lock()
	if lim := rs.limits.maxOffers; lim > 0 && len(rs.files) >= lim {
		rs.mu.Unlock()
		refuse(filexfer.ReasonBusy, fmt.Sprintf("%d files already arriving (--max-offers)", lim))
		return
	}
	if lim := rs.limits.maxPerPeer; lim > 0 && rs.peers[peer] >= lim {
		rs.mu.Unlock()
		refuse(filexfer.ReasonBusy, fmt.Sprintf("%d files from %s already arriving (--max-offers-per-peer)", lim, peer))
		return
	}
	rf := &recvFile{dir: rs.dir, name: safeName(fi.Name), peer: peer, stderr: rs.stderr}
	rs.files[fi.ID] = rf // counted before the file exists, so limits hold under a burst of offers
	rs.peers[peer]++
	rs.mu.Unlock()
	tmp, err := os.CreateTemp(rs.dir, ".mqim-*.part")
	if err != nil {
		rs.release(fi.ID)
		fmt.Fprintln(rs.stderr, "mqim:", err)
		_ = s.Engine().Refuse(fi.ID, filexfer.ReasonIO)
		return
	}
	rs.mu.Lock()
	rf.File = tmp
	rs.mu.Unlock()
	if err := s.Engine().Accept(fi.ID, rf); err != nil {
		// Ended meanwhile (the session closed): its OnDone has released it.
		rs.release(fi.ID)
		tmp.Close()
		os.Remove(tmp.Name())
	}
}

// refused reports on stderr a file that was not accepted: refused by offer
// (its reason) or by the engine itself (too many chunks).
func (rs *recvState) refused(peer string, r filexfer.Result) {
	rs.mu.Lock()
	why, ok := rs.why[r.File.ID]
	delete(rs.why, r.File.ID)
	rs.mu.Unlock()
	if !ok {
		if r.Err == nil || errors.Is(r.Err, filexfer.ErrClosed) {
			return // the session ended before the offer was looked at
		}
		why = r.Err.Error()
	}
	fmt.Fprintf(rs.stderr, "mqim: refused %s (%s) from %s: %s\n", quoteName(r.File.Name), humanBytes(float64(r.File.Size)), peer, why)
}

// release forgets a file and returns it and its temporary file (nil if
// it was not created yet), or nil if it was not ours.
func (rs *recvState) release(id string) (*recvFile, *os.File) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rf := rs.files[id]
	if rf == nil {
		return nil, nil
	}
	delete(rs.files, id)
	if rs.peers[rf.peer]--; rs.peers[rf.peer] <= 0 {
		delete(rs.peers, rf.peer)
	}
	return rf, rf.File
}

// finish ends a file: a committed one is in place already; anything else
// is closed and its temporary file removed. It returns the final path and
// whether the file was one we accepted.
func (rs *recvState) finish(r filexfer.Result) (string, bool) {
	rf, tmp := rs.release(r.File.ID)
	if rf == nil {
		return "", false
	}
	if r.Err == nil {
		return rf.path, true
	}
	if tmp != nil { // else offer removes it when Accept fails
		tmp.Close() // an error only if Commit closed it already
		os.Remove(tmp.Name())
	}
	return "", true
}

// maxNameBytes bounds the names recv-files gives files: NAME_MAX (255 bytes
// on the filesystems of Linux, macOS and Windows) less room for the
// " (999)" that placeFile may add.
const maxNameBytes = 255 - len(" (999)")

// safeName keeps the last path element of a peer-chosen name, never lets
// it be hidden or special, replaces control and bidirectional-override
// characters, and shortens it (keeping a short extension) to fit
// maxNameBytes.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError {
			return '_'
		}
		return r
	}, name)
	if name == "." || name == ".." || name == "/" || name == "" {
		return "file"
	}
	if strings.HasPrefix(name, ".") {
		name = "_" + name[1:]
	}
	if len(name) > maxNameBytes {
		ext := filepath.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:len(name)-len(ext)]
		cut := maxNameBytes - len(ext)
		for cut > 0 && !utf8.RuneStart(stem[cut]) {
			cut--
		}
		name = stem[:cut] + ext
	}
	return name
}

// quoteName is how a name is written on stdout and stderr: as is when it
// is printable and has no space, quote or backslash, else Go-quoted
// (strconv.Quote), so a peer-chosen name can neither forge a line nor send
// the terminal escape sequences.
func quoteName(name string) string {
	for _, r := range name {
		if !unicode.IsPrint(r) || r == ' ' || r == '"' || r == '\\' {
			return strconv.Quote(name)
		}
	}
	if name == "" {
		return `""`
	}
	return name
}

// placeFile links tmp to dir/name, or dir/"stem (n).ext" if that exists,
// then removes tmp. It returns the path once the link exists, also when
// removing tmp then failed (with that error).
func placeFile(dir, name, tmp string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		candidate := name
		if i > 0 {
			candidate = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
		path := filepath.Join(dir, candidate)
		// Link then remove: never replaces a file that appeared meanwhile.
		if err := os.Link(tmp, path); err == nil {
			return path, os.Remove(tmp)
		} else if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// progressBar draws transfers on stderr: one redrawn line on a terminal,
// plain lines (at most one per second per file, and the last at 100%)
// otherwise.
type progressBar struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex
	// per file: the last progress and when a plain line was written
	files map[string]*barFile
}

type barFile struct {
	p        filexfer.Progress
	lastLine time.Time
	full     bool
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty, files: map[string]*barFile{}}
}

func (b *progressBar) update(p filexfer.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bf := b.files[p.File.ID]
	if bf == nil {
		bf = &barFile{}
		b.files[p.File.ID] = bf
	}
	bf.p = p
	if b.tty {
		fmt.Fprintf(b.w, "\r\x1b[K%s", barLine(p, true))
		return
	}
	full := p.Bytes >= p.File.Size
	if (full && !bf.full) || time.Since(bf.lastLine) >= time.Second {
		bf.full, bf.lastLine = full, time.Now()
		fmt.Fprintln(b.w, barLine(p, false))
	}
}

func (b *progressBar) done(r filexfer.Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bf := b.files[r.File.ID]
	delete(b.files, r.File.ID)
	if b.tty {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	if r.Err == nil && (bf == nil || !bf.full) && !b.tty {
		// Tiny files may finish before a progress report.
		fmt.Fprintln(b.w, barLine(filexfer.Progress{File: r.File, Dir: r.Dir, Bytes: r.File.Size}, false))
	}
	if r.Err != nil {
		who := ""
		if r.Remote {
			who = " by the peer"
		}
		fmt.Fprintf(b.w, "%s: failed%s: %v\n", quoteName(r.File.Name), who, r.Err)
		return
	}
	verb := "sent"
	if r.Dir == filexfer.Receiving {
		verb = "received"
	}
	fmt.Fprintf(b.w, "%s: %s %s, SHA-256 verified\n", quoteName(r.File.Name), verb, humanBytes(float64(r.File.Size)))
}

func barLine(p filexfer.Progress, tty bool) string {
	pct := 100.0
	if p.File.Size > 0 {
		pct = 100 * float64(p.Bytes) / float64(p.File.Size)
	}
	left := "--:--"
	if p.BytesPerSec > 0 {
		secs := int((float64(p.File.Size) - float64(p.Bytes)) / p.BytesPerSec)
		left = fmt.Sprintf("%02d:%02d", secs/60, secs%60)
	}
	speed := humanBytes(p.BytesPerSec) + "/s"
	if !tty {
		return fmt.Sprintf("%s: %s %3.0f%% %s of %s, %s, %s left", quoteName(p.File.Name), p.Dir, pct, humanBytes(float64(p.Bytes)), humanBytes(float64(p.File.Size)), speed, left)
	}
	const width = 30
	n := int(pct / 100 * width)
	name := quoteName(p.File.Name)
	if len(name) > 24 {
		name = name[:21] + "..."
	}
	return fmt.Sprintf("%-24s [%s%s] %3.0f%% %9s %s left", name, strings.Repeat("#", n), strings.Repeat("-", width-n), pct, speed, left)
}

func humanBytes(n float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
