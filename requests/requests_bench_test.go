package requests

import (
	"context"
	"testing"
)

// BenchmarkRaiseUnchanged is what each further DM of a stranger costs the
// chat service under dm_policy anyone (a pending request that holds
// nothing back: one read, no write). BenchmarkRaiseHeld is a held one (a
// read and a write through the Writer, here the local database).
func BenchmarkRaiseUnchanged(b *testing.B) { benchRaise(b, false) }

func BenchmarkRaiseHeld(b *testing.B) { benchRaise(b, true) }

func benchRaise(b *testing.B, held bool) {
	s := openTest(b, 0)
	ctx := context.Background()
	rq := Request{ID: DMID("eve"), To: "dave", From: "eve", Kind: KindDM, Held: held}
	if _, _, err := s.Raise(ctx, rq, "first", 1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := s.Raise(ctx, rq, "again", int64(i)); err != nil {
			b.Fatal(err)
		}
	}
}
