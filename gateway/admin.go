package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/imerr"
)

// The admin endpoints (authAdmin in the route table) are the operator's,
// for a running server (the offline CLI cannot open a data directory the
// server holds). They are guarded by Options.AdminToken, a secret from the
// config, not by a user's token: an operator manages the server, not a
// user's own account. Without an admin token they do not exist (404), so
// nothing is open by default.

// admin checks the request's admin token before h.
func (g *Gateway) admin(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, _ string) error {
		if g.o.AdminToken == "" {
			return fail(http.StatusNotFound, imerr.NotFound, "no such endpoint (set admin_token in the config to enable it)")
		}
		tok, ok := bearerValue(r)
		// Hashes first: equal lengths, so the comparison's time says nothing
		// of the token's length either.
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(g.o.AdminToken))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fail(http.StatusUnauthorized, imerr.Unauthorized, "missing or wrong admin token (Authorization: Bearer <admin_token>)")
		}
		return h(w, r, "")
	}
}

// adminCreateUser creates a person account, whatever open_registration
// says: POST /api/v1/admin/users {"user","password"} -> 201 {"user"}.
func (g *Gateway) adminCreateUser(w http.ResponseWriter, r *http.Request, _ string) error {
	var c credentials
	if err := decode(r, &c); err != nil {
		return err
	}
	if err := g.o.Accounts.Create(c.User, c.Password); err != nil {
		if errors.Is(err, accounts.ErrExists) {
			return fail(http.StatusConflict, imerr.Conflict, "user %q exists", c.User)
		}
		return accountErr(err)
	}
	g.o.Log.Info("admin: user created", "user", c.User, "remote", clientIP(r))
	writeJSON(w, http.StatusCreated, map[string]string{"user": c.User})
	return nil
}
