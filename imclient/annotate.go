package imclient

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/mqim/mqim/envelope"
)

// These go through the HTTP API's POST /publish (the same contract as an
// MQTT publish), so the caller gets the stored message, or the refusal as
// an *APIError with its code (not_found, forbidden, invalid, conflict...),
// at once: over MQTT 3.1.1 a refusal arrives only as an error notice.
// Conversations are named as for Send: a user ("bob") or a group ("g:team").

// Post sends draft (a JSON object of the envelope's client fields: body,
// type, cid, meta, reply_to, ref) to a conversation and returns the
// stored message. A draft without a cid gets a fresh one.
func (c *Client) Post(ctx context.Context, to string, draft map[string]any) (envelope.Message, error) {
	if _, ok := draft["cid"]; !ok {
		draft["cid"] = NewCID()
	}
	var out struct {
		Message envelope.Message `json:"message"`
	}
	err := c.api(ctx, "POST", "/api/v1/publish", map[string]any{"topic": c.convTopic(to), "payload": draft}, &out)
	return out.Message, err
}

func (c *Client) convTopic(to string) string {
	if gid, ok := strings.CutPrefix(to, "g:"); ok {
		return "im/g/" + gid
	}
	return "im/u/" + to + "/dm/" + c.o.User
}

// Reply sends a text message answering message id of the conversation.
func (c *Client) Reply(ctx context.Context, to, id, body string) (envelope.Message, error) {
	return c.Post(ctx, to, map[string]any{"body": body, "reply_to": id})
}

// Edit replaces the text of one's own text message id.
func (c *Client) Edit(ctx context.Context, to, id, body string) (envelope.Message, error) {
	return c.Post(ctx, to, map[string]any{"type": envelope.TypeEdit, "ref": id, "body": body})
}

// Retract deletes message id for everyone (one's own, or any in a group
// one owns).
func (c *Client) Retract(ctx context.Context, to, id string) (envelope.Message, error) {
	return c.Post(ctx, to, map[string]any{"type": envelope.TypeRetract, "ref": id})
}

// React sets one's reaction to message id to emoji ("" removes it).
func (c *Client) React(ctx context.Context, to, id, emoji string) (envelope.Message, error) {
	return c.Post(ctx, to, map[string]any{"type": envelope.TypeReaction, "ref": id, "body": emoji})
}

// SearchOptions narrow a Search: Conv one conversation ("bob", "g:team"),
// Before only messages older than that id (the last of the previous
// page), Limit the page size (0: the server's default).
type SearchOptions struct {
	Conv   string
	Before string
	Limit  int
}

// SearchResult is one page of search results, newest first.
type SearchResult struct {
	Messages []envelope.Message `json:"messages"`
	More     bool               `json:"more"`
}

// Search finds the messages with every word of words (GET /api/v1/search).
func (c *Client) Search(ctx context.Context, words string, o SearchOptions) (SearchResult, error) {
	v := url.Values{"q": {words}}
	if o.Conv != "" {
		if gid, ok := strings.CutPrefix(o.Conv, "g:"); ok {
			v.Set("conv", "g/"+gid)
		} else {
			v.Set("conv", "dm/"+o.Conv)
		}
	}
	if o.Before != "" {
		v.Set("before", o.Before)
	}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	var out SearchResult
	err := c.api(ctx, "GET", "/api/v1/search?"+v.Encode(), nil, &out)
	return out, err
}
