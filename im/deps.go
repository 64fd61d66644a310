package im

import (
	"log/slog"
	"time"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/fanout"
	"github.com/mqim/mqim/groups"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/metrics"
	"github.com/mqim/mqim/presence"
	"github.com/mqim/mqim/ratelimit"
	"github.com/mqim/mqim/requests"
	"github.com/mqim/mqim/userlists"
)

// Deps are what the service needs.
type Deps struct {
	Log      *slog.Logger
	Accounts *accounts.Store
	Groups   *groups.Store
	History  history.Store
	Presence presence.View
	Policy   *acl.Policy
	Metrics  *metrics.Metrics
	Limits   envelope.Limits
	Now      func() time.Time
	// PublishRate limits each user's publishes (im/ over MQTT and HTTP,
	// and operator namespaces); nil or a zero rate: unlimited.
	PublishRate *ratelimit.Buckets
	// Hub is the fan-out: ephemeral events go out through it; chat
	// messages reach it from the history store's commits.
	Hub fanout.Hub
	// Contacts is every user's contact list (writing to someone makes it
	// a contact) and Requests the message requests (requests.go); nil:
	// no contacts are kept, no requests raised.
	Contacts *userlists.List
	Requests *requests.Store
}

// AllowPublish takes one of user's publishes from the publish rate: the one
// check of the rate, for im/ and the operator namespaces alike.
func (h *Service) AllowPublish(user string) *imerr.Error {
	if !h.d.PublishRate.Allow(user) {
		return imerr.New(imerr.RateLimited, "publishing too fast; slow down")
	}
	return nil
}
