package p2p

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/mqim/mqim/filexfer"
)

// ErrChannelClosed is returned by Send on a data channel that has closed.
var ErrChannelClosed = errors.New("p2p: data channel closed")

// dataChannel adapts an RTCDataChannel to filexfer.Channel with
// backpressure: Send blocks while more than max bytes are buffered and
// resumes when pion reports the buffer fell below the low threshold.
type dataChannel struct {
	dc     *webrtc.DataChannel
	max    uint64
	low    chan struct{}
	closed chan struct{}
	once   sync.Once

	wrapOnce sync.Once
	wrapped  filexfer.Channel
}

func newDataChannel(dc *webrtc.DataChannel, s Settings) *dataChannel {
	c := &dataChannel{dc: dc, max: s.MaxBufferedAmount, low: make(chan struct{}, 1), closed: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(s.BufferedAmountLowThreshold)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	return c
}

func (c *dataChannel) markClosed() { c.once.Do(func() { close(c.closed) }) }

// Send implements filexfer.Channel.
func (c *dataChannel) Send(b []byte) error {
	for c.dc.BufferedAmount() > c.max {
		if c.dc.ReadyState() != webrtc.DataChannelStateOpen {
			return ErrChannelClosed // closing: the buffer will never drain
		}
		// The timer only guards against a missed low event; the event is
		// what normally wakes us.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-c.low:
		case <-c.closed:
			t.Stop()
			return ErrChannelClosed
		case <-t.C:
		}
		t.Stop()
	}
	select {
	case <-c.closed:
		return ErrChannelClosed
	default:
	}
	return c.dc.Send(b)
}

// drain waits until everything sent has been acknowledged by the peer's
// SCTP stack (pion releases buffered bytes on SACK), the channel closes,
// or d passes. Closing a peer connection discards what is still queued,
// which could be the last frame (a Complete) of a finished transfer.
func (c *dataChannel) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for c.dc.BufferedAmount() > 0 && time.Now().Before(deadline) {
		select {
		case <-c.closed:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}
