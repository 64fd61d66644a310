package broker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLogger is the logger mochi gets: its per-connection info chatter is
// dropped unless debug logging is on, and no record carries a whole packet.
//
// mochi logs every hook refusal of a publish ("publish packet error", at
// error level) and every failed packet ("error processing packet") with the
// packets.Packet struct, ~2.4 KB of text with the payload, and an ordinary
// refused publish is neither an error nor worth a dump: it becomes one
// warning line naming the client, the topic and the reason.
func mochiLogger(l *slog.Logger) *slog.Logger {
	var h slog.Handler = compactPackets{l.Handler()}
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		h = minLevel{h, slog.LevelWarn}
	}
	return slog.New(h).With("component", "mochi")
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.min} }

// compactPackets replaces packet attributes by a short summary and turns
// mochi's report of a refused publish into a concise warning.
type compactPackets struct{ slog.Handler }

func (c compactPackets) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	refused := false
	r.Attrs(func(a slog.Attr) bool {
		switch v := a.Value.Any().(type) {
		case packets.Packet:
			out.AddAttrs(packetSummary(v)...)
			return true
		case error:
			var code packets.Code
			if r.Message == "publish packet error" && errors.As(v, &code) {
				refused = true
				out.AddAttrs(slog.String("reason", code.Reason))
				return true
			}
		}
		out.AddAttrs(a)
		return true
	})
	if refused {
		out.Message, out.Level = "publish refused", slog.LevelWarn
	}
	if !c.Handler.Enabled(ctx, out.Level) {
		return nil
	}
	return c.Handler.Handle(ctx, out)
}

func (c compactPackets) WithAttrs(a []slog.Attr) slog.Handler {
	return compactPackets{c.Handler.WithAttrs(a)}
}
func (c compactPackets) WithGroup(n string) slog.Handler {
	return compactPackets{c.Handler.WithGroup(n)}
}

// packetSummary is what a log line needs of a packet.
func packetSummary(pk packets.Packet) []slog.Attr {
	a := []slog.Attr{slog.Int("type", int(pk.FixedHeader.Type)), slog.Int("packet_id", int(pk.PacketID))}
	if pk.FixedHeader.Type == packets.Publish {
		a = append(a, slog.String("topic", truncate(pk.TopicName, 128)), slog.Int("qos", int(pk.FixedHeader.Qos)),
			slog.Int("bytes", len(pk.Payload)), slog.String("origin", pk.Origin))
	}
	return a
}
