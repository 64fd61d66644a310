package gateway

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mqim/mqim/envelope"
	"github.com/mqim/mqim/im"
	"github.com/mqim/mqim/imerr"
)

// publish serves POST /api/v1/publish: one publish through the same path as
// an MQTT publish (im.Service.Handle), answered with the stamped message for
// chat, {} for the rest, or the error notice's code.
func (g *Gateway) publish(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if !strings.HasPrefix(body.Topic, "im/") {
		return fail(http.StatusBadRequest, imerr.Invalid, "topic must be under im/")
	}
	var payload []byte
	switch p := strings.TrimSpace(string(body.Payload)); {
	case p == "" || p == "null":
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(body.Payload, &s); err != nil {
			return fail(http.StatusBadRequest, imerr.Invalid, "payload: %v", err)
		}
		payload = []byte(s)
	default:
		payload = []byte(p)
	}
	var stamped envelope.Message
	req := im.Request{User: user, ClientID: user + ":http", Topic: body.Topic, Payload: payload, Stamped: &stamped}
	if e := g.o.Transport.IM.Handle(req); e != nil {
		return imFail(e)
	}
	if stamped.ID != "" {
		writeJSON(w, http.StatusOK, map[string]any{"message": stamped})
	} else {
		writeJSON(w, http.StatusOK, map[string]any{})
	}
	return nil
}
