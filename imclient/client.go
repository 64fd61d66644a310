// Package imclient is the Go client of the platform, used by the CLI, the
// device examples, the tests and the benchmarks. It logs in over HTTP,
// connects over MQTT with a persistent session, and hands the application
// every message of every conversation in seq order, exactly once: MQTT gives
// speed, the server's sync feed gives completeness, and a sequencer merges
// the two (holes from dropped or reordered deliveries are filled via sync).
package imclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqim/mqim/envelope"
)

// State is what a client needs to resume without gaps or repeats: the sync
// cursor and the next expected seq of each conversation. Persist it to
// resume across process restarts.
type State struct {
	Cursor string             `json:"cursor"`
	Next   map[ConvKey]uint64 `json:"next"`
}

// Options configure a Client.
type Options struct {
	HTTP     string // base URL of the platform, e.g. http://127.0.0.1:8080
	User     string
	Password string
	Device   string // client id is User:Device; default "go"
	// Broker overrides the MQTT URL (tcp://host:port or ws://host/mqtt);
	// default: what GET /api/v1/connect advertises, asked again whenever
	// the connection is lost (a cluster names another live node).
	Broker string
	// Nodes are more base URLs of the same platform (other nodes of its
	// cluster), asked for /connect when HTTP does not answer.
	Nodes []string
	// OnMessage receives chat messages, per conversation in seq order,
	// exactly once. It is called from one goroutine at a time.
	OnMessage func(envelope.Message)
	// OnEvent receives everything else from the inbox (receipts, typing,
	// signals, error notices, presence) as topic and payload, in the order
	// the broker delivered them (ROAP needs that: an OFFER before its
	// CANDIDATEs), from the same goroutine as OnMessage.
	OnEvent func(topic string, payload []byte)
	// State resumes from a previous run.
	State State
	// GapWait is how long a hole may stay open before a sync fills it
	// (reordered redeliveries usually fill it first). Default 100 ms.
	GapWait time.Duration
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Client is a connected platform client.
type Client struct {
	o    Options
	mqtt paho.Client
	// base is the HTTP API in use and node the node connected to: the
	// last /connect's answer (failover moves both).
	baseMu sync.Mutex
	base   string
	node   string
	seq    *sequencer
	token  string
	tokMu  sync.Mutex

	syncMu   sync.Mutex // one sync at a time
	gapTimer *time.Timer
	timerMu  sync.Mutex
	closed   chan struct{}
	syncErr  chan error

	// inbox keeps inbound publishes in broker order for one worker, so
	// paho's router never runs application code (which may publish and wait).
	inboxMu   sync.Mutex
	inbox     []paho.Message
	inboxWake chan struct{}
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("imclient: closed")

// Dial logs in, connects, subscribes and catches up via sync before returning.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Device == "" {
		o.Device = "go"
	}
	if o.GapWait == 0 {
		o.GapWait = 100 * time.Millisecond
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.OnMessage == nil {
		o.OnMessage = func(envelope.Message) {}
	}
	c := &Client{o: o, closed: make(chan struct{}), syncErr: make(chan error, 1), inboxWake: make(chan struct{}, 1)}
	go c.inboxLoop()
	ok := false
	defer func() {
		if !ok {
			close(c.closed) // stops inboxLoop
		}
	}()
	c.seq = newSequencer(o.User, o.State, o.OnMessage)
	if err := c.login(ctx); err != nil {
		return nil, err
	}
	c.base = strings.TrimRight(o.HTTP, "/")
	pinned := o.Broker != ""
	if !pinned {
		u, err := c.where(ctx, "")
		if err != nil {
			return nil, err
		}
		c.o.Broker = u
	}
	connected := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(c.o.Broker).
		SetReconnectingHandler(func(_ paho.Client, opts *paho.ClientOptions) {
			if pinned {
				return
			}
			// Ask again where to connect, without the node just lost.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if u, err := c.where(fctx, c.currentNode()); err == nil {
				if pu, err := url.Parse(u); err == nil {
					opts.Servers = []*url.URL{pu}
				}
			}
		}).
		SetClientID(o.User + ":" + o.Device).SetUsername(o.User).
		SetCredentialsProvider(func() (string, string) { return o.User, c.currentToken() }).
		SetCleanSession(false).SetOrderMatters(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(func(pc paho.Client) {
			// Subscribing again is harmless with a resumed session and
			// needed with a fresh one; then catch up on whatever was missed.
			// Dial returns only once the SUBACK is in: until then the
			// broker does not route live events (ROAP signals, typing) to
			// this device, and a caller that announces itself ready would
			// lose the first offer sent to it. The handler runs on its own
			// goroutine (paho), so waiting here blocks no reader.
			tok := pc.Subscribe("im/u/"+o.User+"/#", 1, c.onPublish)
			var err error
			if !tok.WaitTimeout(10 * time.Second) {
				err = errors.New("imclient: subscribe: no SUBACK in 10 s")
			} else if err = tok.Error(); err != nil {
				err = fmt.Errorf("imclient: subscribe: %w", err)
			}
			select {
			case connected <- err:
			default:
			}
			go c.syncNow()
		})
	c.mqtt = paho.NewClient(opts)
	tok := c.mqtt.Connect()
	select {
	case <-tok.Done():
		if tok.Error() != nil {
			return nil, fmt.Errorf("imclient: connect: %w", tok.Error())
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-connected:
		if err != nil {
			c.mqtt.Disconnect(100)
			return nil, err
		}
	case <-ctx.Done():
		c.mqtt.Disconnect(100)
		return nil, ctx.Err()
	}
	if err := c.Sync(ctx); err != nil {
		c.mqtt.Disconnect(100)
		return nil, err
	}
	ok = true
	return c, nil
}

// where asks /connect (at the API in use, then at the other known nodes)
// where to connect, avoiding node exclude, and moves the client's API to
// the node named.
func (c *Client) where(ctx context.Context, exclude string) (string, error) {
	var conn struct{ Node, HTTP, MQTT string }
	path := "/api/v1/connect"
	if exclude != "" {
		path += "?exclude=" + url.QueryEscape(exclude)
	}
	var errs []error
	for _, base := range c.bases() {
		err := c.doAt(ctx, base, "GET", path, nil, &conn, true)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			if err = c.login(ctx); err == nil {
				err = c.doAt(ctx, base, "GET", path, nil, &conn, true)
			}
		}
		if err == nil && conn.MQTT != "" {
			c.baseMu.Lock()
			c.node = conn.Node
			if conn.HTTP != "" {
				c.base = strings.TrimRight(conn.HTTP, "/")
			}
			c.baseMu.Unlock()
			return conn.MQTT, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("imclient: no node answered /connect: %w", errors.Join(errs...))
}

// bases are the API in use first, then the other known nodes.
func (c *Client) bases() []string {
	c.baseMu.Lock()
	out := []string{c.base}
	c.baseMu.Unlock()
	for _, b := range append([]string{c.o.HTTP}, c.o.Nodes...) {
		if b = strings.TrimRight(b, "/"); !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

func (c *Client) currentNode() string {
	c.baseMu.Lock()
	defer c.baseMu.Unlock()
	return c.node
}

func (c *Client) currentToken() string {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	return c.token
}

func (c *Client) login(ctx context.Context) error {
	var out struct{ Token string }
	body := map[string]string{"user": c.o.User, "password": c.o.Password}
	if err := c.do(ctx, "POST", "/api/v1/login", body, &out, false); err != nil {
		return fmt.Errorf("imclient: login: %w", err)
	}
	c.tokMu.Lock()
	c.token = out.Token
	c.tokMu.Unlock()
	return nil
}

// APIError is an error answer of the HTTP API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// api calls the HTTP API with the token, logging in again once if it expired.
func (c *Client) api(ctx context.Context, method, path string, body, out any) error {
	err := c.do(ctx, method, path, body, out, true)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		if err := c.login(ctx); err != nil {
			return err
		}
		err = c.do(ctx, method, path, body, out, true)
	}
	return err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any, auth bool) error {
	var errs []error
	for _, base := range c.bases() {
		err := c.doAt(ctx, base, method, path, body, out, auth)
		var ae *APIError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err // an answer, even an error one, is the node's
		}
		errs = append(errs, err) // unreachable: try another node
	}
	return errors.Join(errs...)
}

func (c *Client) doAt(ctx context.Context, base, method, path string, body, out any, auth bool) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.currentToken())
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(raw, &e)
		return &APIError{resp.StatusCode, e.Error.Code, e.Error.Message}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// API calls an authenticated endpoint of the HTTP API.
func (c *Client) API(ctx context.Context, method, path string, body, out any) error {
	return c.api(ctx, method, path, body, out)
}

// onPublish runs on paho's router goroutine (OrderMatters): it only queues.
func (c *Client) onPublish(_ paho.Client, m paho.Message) {
	c.inboxMu.Lock()
	c.inbox = append(c.inbox, m)
	c.inboxMu.Unlock()
	select {
	case c.inboxWake <- struct{}{}:
	default:
	}
}

func (c *Client) inboxLoop() {
	for {
		select {
		case <-c.closed:
			return
		case <-c.inboxWake:
		}
		for {
			c.inboxMu.Lock()
			if len(c.inbox) == 0 {
				c.inbox = nil
				c.inboxMu.Unlock()
				break
			}
			m := c.inbox[0]
			c.inbox[0] = nil
			c.inbox = c.inbox[1:]
			c.inboxMu.Unlock()
			c.dispatch(m)
		}
	}
}

func (c *Client) dispatch(m paho.Message) {
	var e envelope.Message
	if strings.Contains(m.Topic(), "/dm/") || strings.Contains(m.Topic(), "/g/") {
		if json.Unmarshal(m.Payload(), &e) == nil && e.Seq > 0 {
			if c.seq.live(e) {
				c.scheduleSync()
			}
			return
		}
	}
	if c.o.OnEvent != nil {
		c.o.OnEvent(m.Topic(), m.Payload())
	}
}

// scheduleSync runs a sync after GapWait unless one is already scheduled.
func (c *Client) scheduleSync() {
	c.timerMu.Lock()
	defer c.timerMu.Unlock()
	if c.gapTimer != nil {
		return
	}
	c.gapTimer = time.AfterFunc(c.o.GapWait, func() {
		c.timerMu.Lock()
		c.gapTimer = nil
		c.timerMu.Unlock()
		c.syncNow()
	})
}

func (c *Client) syncNow() {
	select {
	case <-c.closed:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Sync(ctx); err != nil {
		select {
		case c.syncErr <- err:
		default:
		}
	}
}

// Sync fetches everything after the cursor and delivers what is new.
func (c *Client) Sync(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	for {
		cur := c.seq.state().Cursor
		var page struct {
			Messages []envelope.Message
			Cursor   string
			More     bool
		}
		err := c.api(ctx, "GET", "/api/v1/sync?limit=1000&since="+url.QueryEscape(cur), nil, &page)
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == "reset" {
			// The server's store is not the one the cursor came from: start
			// over; the sequencer's per-conversation state still drops repeats.
			c.seq.mu.Lock()
			c.seq.cursor = ""
			c.seq.mu.Unlock()
			continue
		}
		if err != nil {
			return fmt.Errorf("imclient: sync: %w", err)
		}
		c.seq.synced(page.Messages, page.Cursor)
		if !page.More {
			c.seq.settle()
			return nil
		}
	}
}

// State returns what is needed to resume later.
func (c *Client) State() State { return c.seq.state() }

// Duplicates counts repeated deliveries the client suppressed.
func (c *Client) Duplicates() int {
	c.seq.mu.Lock()
	defer c.seq.mu.Unlock()
	return c.seq.dupes
}

// NewCID returns a random client message id.
func NewCID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return "c-" + hex.EncodeToString(b)
}

// Publish publishes payload to topic at QoS 1 and waits for the PUBACK,
// which for chat messages means the server has stored it.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte) error {
	tok := c.mqtt.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send sends a text message to a user ("bob") or a group ("g:team") with a
// fresh cid, so retrying the same call after an error cannot duplicate it.
func (c *Client) Send(ctx context.Context, to, body string) (cid string, err error) {
	cid = NewCID()
	return cid, c.SendCID(ctx, to, cid, body)
}

// SendCID sends with a caller-chosen cid (retries with the same cid are safe).
func (c *Client) SendCID(ctx context.Context, to, cid, body string) error {
	payload, _ := json.Marshal(map[string]string{"cid": cid, "body": body})
	return c.Publish(ctx, c.convTopic(to), payload)
}

// MQTT exposes the underlying paho client (for raw topics such as signals).
func (c *Client) MQTT() paho.Client { return c.mqtt }

// Close disconnects.
func (c *Client) Close() {
	select {
	case <-c.closed:
		return
	default:
		close(c.closed)
	}
	c.timerMu.Lock()
	if c.gapTimer != nil {
		c.gapTimer.Stop()
	}
	c.timerMu.Unlock()
	c.mqtt.Disconnect(250)
}
