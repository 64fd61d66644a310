package p2p

import (
	"net"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"
)

// Settings gathers every WebRTC knob mqim uses in one place; Peer builds its
// pion SettingEngine and PeerConnection configuration from it.
type Settings struct {
	// ICEServers are the STUN/TURN servers (the server's API hands them out).
	ICEServers []webrtc.ICEServer
	// IncludeLoopback offers 127.0.0.1 candidates. pion needs it when both
	// peers are on one machine with no other interface; do not use it with
	// browsers, which refuse loopback candidates.
	IncludeLoopback bool
	// InterfaceFilter, if set, limits the interfaces candidates are gathered on.
	InterfaceFilter func(name string) bool
	// NetworkTypes defaults to UDP over IPv4 and IPv6.
	NetworkTypes []webrtc.NetworkType
	// EnableMDNS turns on mDNS candidates (off by default: it multicasts,
	// and hosts on one LAN reach each other by address anyway).
	EnableMDNS bool
	// PrflxAcceptanceMinWait: pion waits this long before accepting a
	// peer-reflexive pair; its default of 1s delays setup when pion offers.
	PrflxAcceptanceMinWait time.Duration
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepaliveInterval
	// (pion defaults 5s, 25s, 2s when zero) bound how fast a dead path is noticed.
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepaliveInterval   time.Duration
	// BufferedAmountLowThreshold is when a paused sender resumes (default 16 KiB).
	BufferedAmountLowThreshold uint64
	// UDPReadBuffer is the receive buffer of the UDP sockets ICE opens
	// (default 4 MiB; Linux caps it at net.core.rmem_max). The kernel's
	// default of ~200 KiB overflows at data channel speeds on loopback, and
	// every dropped datagram stalls SCTP until it retransmits.
	UDPReadBuffer int
	// GatherWait is how long an ANSWER waits for ICE gathering so that it
	// carries the candidates in its SDP (default 100ms; negative: send at
	// once and only trickle). Gathering host candidates takes milliseconds;
	// without it about one session in ten loses 200 ms to candidates that
	// trickle in just after pion's first check round. (An OFFER carries no
	// candidates at all; see the package doc.)
	GatherWait time.Duration
	// MaxBufferedAmount is the data channel's send buffer above which
	// sending pauses (default 1 MiB; browsers fail at ~16 MiB and larger
	// buffers only add latency).
	MaxBufferedAmount uint64
}

// DefaultSettings are for talking to browsers and other devices.
func DefaultSettings() Settings {
	return Settings{
		ICEDisconnectedTimeout:     3 * time.Second,
		ICEFailedTimeout:           10 * time.Second,
		ICEKeepaliveInterval:       time.Second,
		BufferedAmountLowThreshold: 16 * 1024,
		MaxBufferedAmount:          1 << 20,
		UDPReadBuffer:              4 << 20,
		GatherWait:                 100 * time.Millisecond,
	}
}

// LoopbackSettings are DefaultSettings for two pion peers on one machine
// with nothing but the loopback interface between them (tests, benchmarks).
func LoopbackSettings() Settings {
	s := DefaultSettings()
	s.IncludeLoopback = true
	s.InterfaceFilter = func(name string) bool { return name == "lo" }
	s.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	return s
}

func (s *Settings) fill() {
	d := DefaultSettings()
	if s.BufferedAmountLowThreshold == 0 {
		s.BufferedAmountLowThreshold = d.BufferedAmountLowThreshold
	}
	if s.MaxBufferedAmount == 0 {
		s.MaxBufferedAmount = d.MaxBufferedAmount
	}
	if s.UDPReadBuffer == 0 {
		s.UDPReadBuffer = d.UDPReadBuffer
	}
	if s.GatherWait == 0 {
		s.GatherWait = d.GatherWait
	}
}

// api builds the pion API for these settings.
func (s Settings) api() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(s.IncludeLoopback)
	if s.InterfaceFilter != nil {
		se.SetInterfaceFilter(s.InterfaceFilter)
	}
	nt := s.NetworkTypes
	if len(nt) == 0 {
		nt = []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	}
	se.SetNetworkTypes(nt)
	if s.EnableMDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryAndGather)
	} else {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	se.SetPrflxAcceptanceMinWait(s.PrflxAcceptanceMinWait)
	if s.ICEDisconnectedTimeout > 0 || s.ICEFailedTimeout > 0 || s.ICEKeepaliveInterval > 0 {
		se.SetICETimeouts(s.ICEDisconnectedTimeout, s.ICEFailedTimeout, s.ICEKeepaliveInterval)
	}
	if s.UDPReadBuffer > 0 {
		if n, err := stdnet.NewNet(); err == nil {
			se.SetNet(&bufferedNet{Net: n, size: s.UDPReadBuffer})
		}
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// bufferedNet is the standard network with larger UDP socket buffers.
type bufferedNet struct {
	*stdnet.Net
	size int
}

func (n *bufferedNet) ListenUDP(network string, addr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, addr)
	if err == nil {
		if uc, ok := c.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(n.size) // best effort: capped by the kernel
			_ = uc.SetWriteBuffer(n.size)
		}
	}
	return c, err
}

func (n *bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		if uc, ok := c.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(n.size)
			_ = uc.SetWriteBuffer(n.size)
		}
	}
	return c, err
}
