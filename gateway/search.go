package gateway

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mqim/mqim/acl"
	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/history"
	"github.com/mqim/mqim/imerr"
	"github.com/mqim/mqim/search"
)

// maxSearchQuery bounds q (bytes); searchMax the page size.
const (
	maxSearchQuery = 256
	searchMax      = 100
)

// search serves GET /api/v1/search?q=WORDS[&conv=dm/PEER|g/GID][&before=ID][&limit=N]:
// messages with every word, newest first, from the conversations the
// caller may read now (acl), as history has them now (docs/protocol.md,
// "Search").
func (g *Gateway) search(w http.ResponseWriter, r *http.Request, user string) error {
	if g.o.Search == nil {
		return fail(http.StatusNotFound, imerr.NotFound, "search is not available on this server")
	}
	v := r.URL.Query()
	q := strings.TrimSpace(v.Get("q"))
	if len(q) < 1 || len(q) > maxSearchQuery {
		return fail(http.StatusBadRequest, imerr.Invalid, "q must be 1-%d bytes", maxSearchQuery)
	}
	before := v.Get("before")
	if before != "" && !envelope.ValidID(before) {
		return fail(http.StatusBadRequest, imerr.Invalid, "before must be a message id")
	}
	limit, err := intParam(r, "limit", 20, 1, searchMax)
	if err != nil {
		return err
	}
	query := search.Query{Words: q, User: user, Before: before, Limit: int(limit)}
	if c := v.Get("conv"); c != "" {
		conv, e := g.readableConv(user, c)
		if e != nil {
			return imFail(e)
		}
		query.Conv = conv
	} else {
		for _, gr := range g.o.Groups.Of(user) {
			query.Groups = append(query.Groups, gr.ID)
		}
	}
	if wait, ok := g.o.SearchRate.Take(user); !ok {
		return &apiError{status: http.StatusTooManyRequests, code: imerr.RateLimited, msg: "searching too fast; slow down", retryAfter: int(wait.Seconds()) + 1}
	}
	msgs, more, err := g.o.Search.Search(r.Context(), query)
	if errors.Is(err, search.ErrNoWords) {
		return fail(http.StatusBadRequest, imerr.Invalid, "q has no words to search for")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "more": more})
	return nil
}

// readableConv is the conversation "dm/PEER" or "g/GID" names, if user
// may read it (acl.CanReadConversation, as for its history).
func (g *Gateway) readableConv(user, c string) (history.ConvID, *imerr.Error) {
	kind, name, _ := strings.Cut(c, "/")
	var ac acl.Conversation
	var conv history.ConvID
	switch {
	case kind == "dm" && name != "":
		ac, conv = acl.DMWith(name), history.DM(user, name)
	case kind == "g" && name != "":
		ac, conv = acl.InGroup(name), history.Group(name)
	default:
		return "", imerr.New(imerr.Invalid, "conv must be dm/PEER or g/GID")
	}
	if e := g.o.Policy.CanReadConversation(user, ac); e != nil {
		return "", e
	}
	return conv, nil
}
