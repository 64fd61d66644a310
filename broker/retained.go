package broker

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Retained messages that clients publish outside im/ (operator namespaces)
// are kept durably before they are acknowledged: mochi's hook writes them
// without fsync, after it has decided to acknowledge, and only logs a failed
// write. They are kept instead in the platform's own database (committed,
// and fsync'd under durability "batch", in OnPublish, before mochi sends the
// PUBACK), under
//
//	rt/{topic}   a storage.Message, as mochi's hook stores it
//
// Retained messages the server publishes itself (presence under im/) stay in
// mochi's store: they are rebuilt at start anyway.
const retainedPrefix = "rt/"

// durableRetained reports whether pk is a retained publish kept here.
func durableRetained(cl *mqtt.Client, pk packets.Packet) bool {
	return pk.FixedHeader.Retain && !cl.Net.Inline && !strings.HasPrefix(pk.TopicName, topic.Prefix)
}

// Provides adds OnPublish to mochi's hook events.
func (h *sessionStore) Provides(b byte) bool {
	return (b == mqtt.OnPublish && h.retained != nil) || h.Hook.Provides(b)
}

// OnPublish stores a client's retained publish outside im/ before mochi
// acknowledges it, and refuses the publish when that fails. It runs after
// hooks.IM, which refuses such publishes when the disk is below its reserve.
func (h *sessionStore) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !durableRetained(cl, pk) {
		return pk, nil
	}
	k := []byte(retainedPrefix + pk.TopicName)
	err := h.retained.Update(func(txn *badger.Txn) error {
		if len(pk.Payload) == 0 { // [MQTT-3.3.1-10] an empty retained message clears the topic
			return txn.Delete(k)
		}
		b, err := retainedRecord(cl, pk).MarshalBinary()
		if err != nil {
			return err
		}
		return txn.Set(k, b)
	})
	if err != nil {
		h.Log.Error("retained message not stored; publish refused", "topic", pk.TopicName, "client", cl.ID, "error", err)
		return pk, h.im.Refuse(cl, pk, imerr.New(imerr.Internal, "retained message could not be stored; retry"))
	}
	return pk, nil
}

func retainedRecord(cl *mqtt.Client, pk packets.Packet) *storage.Message {
	p := pk.Properties
	return &storage.Message{
		ID: storage.RetainedKey + "_" + pk.TopicName, T: storage.RetainedKey, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, Created: pk.Created, Client: cl.ID, Origin: pk.Origin,
		Properties: storage.MessageProperties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag, MessageExpiryInterval: p.MessageExpiryInterval,
			ContentType: p.ContentType, ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData, User: p.User,
		},
	}
}

// OnRetainMessage leaves a durable retained message to OnPublish; a cleared
// topic is cleared in mochi's store too, so that an older copy kept there
// (before this store existed) cannot come back at the next start.
func (h *sessionStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if h.full() || (h.retained != nil && durableRetained(cl, pk) && r != -1) {
		return
	}
	h.Hook.OnRetainMessage(cl, pk, r)
}

// OnRetainedExpired removes an expired retained message from both stores.
func (h *sessionStore) OnRetainedExpired(filter string) {
	h.Hook.OnRetainedExpired(filter)
	if h.retained == nil || strings.HasPrefix(filter, topic.Prefix) {
		return
	}
	if err := h.retained.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(retainedPrefix + filter)) }); err != nil {
		h.Log.Error("expired retained message not removed", "topic", filter, "error", err)
	}
}

// StoredRetainedMessages returns mochi's retained messages with the durable
// ones over them (same topic: the durable one is newer).
func (h *sessionStore) StoredRetainedMessages() ([]storage.Message, error) {
	v, err := h.Hook.StoredRetainedMessages()
	if err != nil || h.retained == nil {
		return v, err
	}
	at := map[string]int{}
	for i, m := range v {
		at[m.TopicName] = i
	}
	err = h.retained.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(retainedPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var m storage.Message
			if err := it.Item().Value(m.UnmarshalBinary); err != nil {
				return fmt.Errorf("%s: %w", it.Item().Key(), err)
			}
			if i, ok := at[m.TopicName]; ok {
				v[i] = m
			} else {
				v = append(v, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("broker: load retained messages: %w", err)
	}
	return v, nil
}
