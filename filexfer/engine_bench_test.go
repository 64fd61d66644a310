package filexfer

import (
	"testing"
	"time"
)

// zeroFile is a ReaderAt of zeros that costs no memory: a large file whose
// reads are as cheap as reads can be, so what is measured is the engine.
type zeroFile struct{}

func (zeroFile) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// firstChunk is a Channel that tells when the Describe and the first Chunk
// frame of a file were sent.
type firstChunk struct {
	described chan string
	chunk     chan struct{}
}

func (c *firstChunk) Send(b []byte) error {
	f, err := Decode(b)
	if err != nil {
		return err
	}
	switch f.Type {
	case TypeDescribe:
		select {
		case c.described <- f.FileID:
		default:
		}
	case TypeChunk:
		select {
		case c.chunk <- struct{}{}:
		default:
		}
	}
	return nil
}

// BenchmarkTimeToFirstChunk measures, for a 1 GiB file, the time from
// SendFile until the Describe is on the channel (ms-describe) and until the
// first chunk is (ms-first-chunk), when the receiver asks for chunk 0 as
// soon as the Describe arrives. The file is cancelled after its first chunk.
//
//	go test -run '^$' -bench TimeToFirstChunk -benchtime 3x ./filexfer/
func BenchmarkTimeToFirstChunk(b *testing.B) {
	const size = 1 << 30
	var describe, first time.Duration
	for range b.N {
		ch := &firstChunk{described: make(chan string, 1), chunk: make(chan struct{}, 1)}
		e := NewEngine(Config{})
		e.Attach(ch)
		start := time.Now()
		described := make(chan time.Duration, 1)
		go func() {
			id := <-ch.described
			described <- time.Since(start)
			req, _ := (&Frame{Type: TypeRequest, FileID: id, Ranges: []Range{{0, 1}}}).Encode()
			if err := e.HandleFrame(ch, req); err != nil {
				b.Error(err)
			}
		}()
		info, err := e.SendFile("big.bin", "", zeroFile{}, size)
		if err != nil {
			b.Fatal(err)
		}
		<-ch.chunk
		first += time.Since(start)
		describe += <-described
		_ = e.Cancel(info.ID)
		e.Close()
	}
	b.ReportMetric(float64(describe.Microseconds())/1000/float64(b.N), "ms-describe")
	b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "ms-first-chunk")
}
