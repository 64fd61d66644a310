package ratelimit

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// ListenerLimits bound what one client IP may do to a listener. Zero fields
// disable their limit.
type ListenerLimits struct {
	// MaxConns is the number of connections one IP may hold open at once.
	MaxConns int
	// Rate and Burst bound new connections per IP (token bucket, per second).
	Rate  float64
	Burst int
	// Now is the clock of the connect-rate buckets; nil means time.Now.
	Now func() time.Time
	// OnRefuse, if set, is called with the remote IP of every refused
	// connection (metrics).
	OnRefuse func(ip string, reason string)
}

// Listener wraps a net.Listener: a connection over its IP's limits is closed
// as soon as it is accepted, before anything is read from it, and Accept goes
// on to the next one (the wrapped server never sees it). Behind a reverse
// proxy every client has the proxy's IP: raise or disable the limits there.
type Listener struct {
	net.Listener
	lim   ListenerLimits
	rate  *Buckets
	mu    sync.Mutex
	conns map[string]int
}

// NewListener wraps l.
func NewListener(l net.Listener, lim ListenerLimits) *Listener {
	return &Listener{Listener: l, lim: lim, rate: NewBuckets(lim.Rate, lim.Burst, lim.Now), conns: map[string]int{}}
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		if reason := l.admit(ip); reason != "" {
			c.Close()
			if l.lim.OnRefuse != nil {
				l.lim.OnRefuse(ip, reason)
			}
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *Listener) admit(ip string) string {
	if !l.rate.Allow(ip) {
		return "connect_rate"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.MaxConns > 0 && l.conns[ip] >= l.lim.MaxConns {
		return "max_conns"
	}
	l.conns[ip]++
	return ""
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

// Open returns the number of connections ip holds open.
func (l *Listener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[ip]
}

func remoteIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// NetConn is the accepted connection, for readers that use its socket.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// SyscallConn exposes the socket (for non-blocking writes), if it is one.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNotSocket
}

var errNotSocket = errors.New("ratelimit: not a socket")

// CloseWrite half-closes the socket, if it is one (a lingering close).
func (c *limitedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errNotSocket
}
