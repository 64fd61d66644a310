package gateway

import (
	"errors"
	"net/http"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/hooks"
	"github.com/mqim/mqim/imerr"
)

// Device accounts and their API keys. A person creates and manages devices;
// revoking a key disconnects every session that authenticated with it.

func (g *Gateway) createDevice(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		ID string `json:"id"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if kind, err := g.o.Accounts.Kind(user); err != nil {
		return err
	} else if kind != accounts.KindPerson {
		return fail(http.StatusForbidden, imerr.Forbidden, "only people manage devices")
	}
	switch err := g.o.Accounts.CreateDevice(body.ID, user); {
	case errors.Is(err, accounts.ErrExists):
		return fail(http.StatusConflict, imerr.Conflict, "user id %q taken", body.ID)
	case errors.Is(err, accounts.ErrInvalidUser):
		return fail(http.StatusBadRequest, imerr.Invalid, "device id must match ^[a-z0-9][a-z0-9_.-]{0,31}$")
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": body.ID, "kind": accounts.KindDevice, "owner": user})
	return nil
}

func (g *Gateway) listDevices(w http.ResponseWriter, _ *http.Request, user string) error {
	ds, err := g.o.Accounts.Devices(user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": ds})
	return nil
}

// deviceHandler serves a route of one device, {id}, that the caller
// manages.
type deviceHandler func(w http.ResponseWriter, r *http.Request, device string) error

// managed is h behind the acl rule on managing device {id}
// (acl.CanManageDevice): 404 for no such device, 403 for another's.
func (g *Gateway) managed(h deviceHandler) handler {
	return func(w http.ResponseWriter, r *http.Request, user string) error {
		id := r.PathValue("id")
		if e := g.o.Policy.CanManageDevice(user, id); e != nil {
			return imFail(e)
		}
		return h(w, r, id)
	}
}

func (g *Gateway) createKey(w http.ResponseWriter, r *http.Request, id string) error {
	var body struct {
		ClientID string `json:"client_id"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			return err
		}
	}
	clientID := body.ClientID
	if clientID != "" {
		if len(clientID) > hooks.MaxClientIDBytes {
			return fail(http.StatusBadRequest, imerr.Invalid, "client_id too long (at most %d bytes)", hooks.MaxClientIDBytes)
		}
		clientID = hooks.SessionKey(id, clientID) // what a CONNECT with it is checked as
	}
	secret, k, err := g.o.Accounts.CreateKey(id, clientID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key": secret, "id": k.ID, "user": k.User, "client_id": k.ClientID, "created": k.Created})
	return nil
}

func (g *Gateway) listKeys(w http.ResponseWriter, _ *http.Request, id string) error {
	keys, err := g.o.Accounts.Keys(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

func (g *Gateway) revokeKey(w http.ResponseWriter, r *http.Request, id string) error {
	k, err := g.o.Accounts.RevokeKey(id, r.PathValue("kid"))
	if errors.Is(err, accounts.ErrNoKey) {
		return fail(http.StatusNotFound, imerr.NotFound, "no such key")
	}
	if err != nil {
		return err
	}
	if g.o.KeyRevoked != nil {
		g.o.KeyRevoked(k.ID)
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

// revokeDevice signs a device out everywhere: every key of it is revoked and
// every session on them dropped.
func (g *Gateway) revokeDevice(w http.ResponseWriter, _ *http.Request, id string) error {
	keys, err := g.o.Accounts.RevokeKeys(id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if g.o.KeyRevoked != nil {
			g.o.KeyRevoked(k.ID)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}
