package gateway

import (
	"errors"
	"net/http"

	"github.com/mqim/mqim/blocks"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/topic"
)

// Blocking (docs/protocol.md, "Blocking"): the block list is edited here;
// acl.Policy enforces it on every publish, presence delivery and group add.
func (g *Gateway) blockRoutes(add func(pattern string, h handler)) {
	add("POST /api/v1/blocks", g.block)
	add("DELETE /api/v1/blocks/{user}", g.unblock)
	add("GET /api/v1/blocks", g.listBlocks)
}

func (g *Gateway) block(w http.ResponseWriter, r *http.Request, user string) error {
	other, err := g.decodeUser(r)
	if err != nil {
		return err
	}
	switch err := g.o.Blocks.Block(user, other, g.o.Now().UnixMilli()); {
	case errors.Is(err, blocks.ErrSelf):
		return fail(http.StatusBadRequest, imerr.Invalid, "you cannot block yourself")
	case errors.Is(err, blocks.ErrQuota):
		return fail(http.StatusTooManyRequests, imerr.QuotaExceeded, "you block %d users already: unblock one first", g.o.Blocks.Max())
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": other, "blocked": true})
	return nil
}

func (g *Gateway) unblock(w http.ResponseWriter, r *http.Request, user string) error {
	other := r.PathValue("user")
	if !topic.ValidUser(other) {
		return fail(http.StatusBadRequest, imerr.Invalid, "invalid user id %q", other)
	}
	if _, err := g.o.Blocks.Unblock(user, other); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": other, "blocked": false})
	return nil
}

func (g *Gateway) listBlocks(w http.ResponseWriter, _ *http.Request, user string) error {
	writeJSON(w, http.StatusOK, map[string]any{"blocks": g.o.Blocks.List(user)})
	return nil
}

// canSeePresence is the acl read rule for user's view of im/presence/{of},
// which the feeds and GET /presence apply as the broker does per delivery.
func (g *Gateway) canSeePresence(user, clientID, presenceTopic string) bool {
	return g.o.Policy == nil || g.o.Policy.CanSubscribe(user, clientID, presenceTopic)
}
