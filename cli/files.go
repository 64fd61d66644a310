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
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

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

// commandContext ends on SIGINT/SIGTERM and after timeout (if set).
func commandContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
	if r.Remote && (errors.Is(r.Err, filexfer.ErrDeclined) || errors.Is(r.Err, filexfer.ErrCancelled)) {
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *to == "" || fs.NArg() == 0 || !topic.ValidUser(*to) {
		fmt.Fprintln(stderr, "usage: mqim send-file --http URL --user U --password P --to PEER FILE...")
		return exitUsage
	}
	defer p2p.TuneGC()()
	var items []*sendItem
	for _, path := range fs.Args() {
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

	ctx, cancel := commandContext(f.timeout)
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

	s, err := ep.peer.Dial(ctx, *to)
	if err != nil {
		fmt.Fprintf(stderr, "mqim: cannot reach %s: %v\n", *to, err)
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
			fmt.Fprintf(stdout, "sent %s %d %x\n", r.File.Name, r.File.Size, r.File.SHA256)
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

// postFileMessage records a delivered file in the DM with peer.
func postFileMessage(ctx context.Context, c *imclient.Client, me, peer string, fi filexfer.FileInfo) error {
	meta, _ := json.Marshal(FileMeta{Name: fi.Name, Size: fi.Size, SHA256: hex.EncodeToString(fi.SHA256[:]), MIME: fi.MIME})
	msg, _ := json.Marshal(map[string]any{"cid": imclient.NewCID(), "type": FileMessageType, "body": fi.Name, "meta": json.RawMessage(meta)})
	return c.Publish(ctx, topic.Topic{Kind: topic.DM, Owner: peer, Peer: me}.String(), msg)
}

// recvState tracks the files recv-files is writing.
type recvState struct {
	dir string
	mu  sync.Mutex
	tmp map[string]*os.File // file id -> partial file
}

// recvFiles implements `mqim recv-files`.
func recvFiles(args []string, stdout, stderr io.Writer) int {
	fs, f := newXferFlags("recv-files", "recv-files", stderr)
	dir := fs.String("dir", ".", "directory to write received files to")
	count := fs.Int("count", 0, "exit after this many files (0: run until interrupted)")
	from := fs.String("from", "", "accept files from this user only")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 || *count < 0 {
		fmt.Fprintln(stderr, "usage: mqim recv-files --http URL --user U --password P --dir DIR [--count N]")
		return exitUsage
	}
	defer p2p.TuneGC()()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return exitFailed
	}
	ctx, cancel := commandContext(f.timeout)
	defer cancel()
	bar := newProgressBar(stderr)
	rs := &recvState{dir: *dir, tmp: map[string]*os.File{}}
	results := make(chan filexfer.Result, 16)
	ep, err := f.open(ctx, p2p.Config{
		Accept: func(peer string) bool { return *from == "" || peer == *from },
		Transfer: func(s *p2p.Session) filexfer.Config {
			return filexfer.Config{
				OnOffer: func(fi filexfer.FileInfo) {
					// Accept (it sends frames) outside the engine's callback.
					go rs.accept(s, fi, stderr)
				},
				OnProgress: bar.update,
				OnDone: func(r filexfer.Result) {
					path, err := rs.finish(r)
					if err != nil && r.Err == nil {
						r.Err = err
					}
					bar.done(r)
					if r.Err == nil {
						fmt.Fprintf(stdout, "received %s %d %x %s\n", r.File.Name, r.File.Size, r.File.SHA256, path)
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

func (rs *recvState) accept(s *p2p.Session, fi filexfer.FileInfo, stderr io.Writer) {
	tmp, err := os.CreateTemp(rs.dir, ".mqim-*.part")
	if err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		_ = s.Engine().Decline(fi.ID)
		return
	}
	rs.mu.Lock()
	rs.tmp[fi.ID] = tmp
	rs.mu.Unlock()
	if err := s.Engine().Accept(fi.ID, tmp); err != nil {
		rs.mu.Lock()
		delete(rs.tmp, fi.ID)
		rs.mu.Unlock()
		tmp.Close()
		os.Remove(tmp.Name())
	}
}

// finish renames a verified file into place (or removes a failed one) and
// returns where it went.
func (rs *recvState) finish(r filexfer.Result) (string, error) {
	rs.mu.Lock()
	tmp := rs.tmp[r.File.ID]
	delete(rs.tmp, r.File.ID)
	rs.mu.Unlock()
	if tmp == nil {
		return "", nil
	}
	cerr := tmp.Close()
	if r.Err != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", cerr
	}
	path, err := placeFile(rs.dir, safeName(r.File.Name), tmp.Name())
	if err != nil {
		os.Remove(tmp.Name())
	}
	return path, err
}

// safeName keeps the last path element of a peer-chosen name and never
// lets it be hidden or special.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
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
	return name
}

// placeFile moves tmp to dir/name, or dir/"stem (n).ext" if that exists.
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
		fmt.Fprintf(b.w, "%s: failed%s: %v\n", r.File.Name, who, r.Err)
		return
	}
	verb := "sent"
	if r.Dir == filexfer.Receiving {
		verb = "received"
	}
	fmt.Fprintf(b.w, "%s: %s %s, SHA-256 verified\n", r.File.Name, verb, humanBytes(float64(r.File.Size)))
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
		return fmt.Sprintf("%s: %s %3.0f%% %s of %s, %s, %s left", p.File.Name, p.Dir, pct, humanBytes(float64(p.Bytes)), humanBytes(float64(p.File.Size)), speed, left)
	}
	const width = 30
	n := int(pct / 100 * width)
	name := p.File.Name
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
