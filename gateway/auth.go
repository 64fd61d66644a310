package gateway

import (
	"errors"
	"net"
	"net/http"

	"github.com/mqim/mqim/accounts"
	"github.com/mqim/mqim/imerr"
)

// Accounts and sessions: registration, password login, logout, password
// change and "sign out everywhere". Password checks are throttled per client
// IP and per account and bounded by the KDF gate (package accounts); their
// refusals say when to retry (Retry-After). Revoking tokens also drops the
// live MQTT sessions that authenticated with them (Options.TokenRevoked,
// UserRevoked).

type credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// clientIP is the request's remote IP (the proxy's, behind a reverse proxy).
func clientIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// accountErr maps the accounts package's refusals to API errors.
func accountErr(err error) error {
	var pe *accounts.PasswordError
	if secs, ok := accounts.RetryAfter(err); ok {
		if errors.Is(err, accounts.ErrBusy) {
			return &apiError{status: http.StatusServiceUnavailable, code: imerr.Busy, retryAfter: secs,
				msg: "server busy checking passwords; retry shortly"}
		}
		return &apiError{status: http.StatusTooManyRequests, code: imerr.RateLimited, retryAfter: secs,
			msg: "too many failed logins; retry later"}
	}
	if errors.As(err, &pe) {
		return fail(http.StatusBadRequest, imerr.Invalid, "%s", pe.Reason)
	}
	return refuse(err,
		refusal{accounts.ErrBadCredentials, http.StatusUnauthorized, imerr.Unauthorized, "bad user or password"},
		refusal{accounts.ErrExists, http.StatusConflict, imerr.Conflict, "user exists"},
		refusal{accounts.ErrInvalidUser, http.StatusBadRequest, imerr.Invalid, "user id must match ^[a-z0-9][a-z0-9_.-]{0,31}$"})
}

func (g *Gateway) register(w http.ResponseWriter, r *http.Request, _ string) error {
	if !g.o.OpenRegistration {
		return fail(http.StatusForbidden, imerr.Forbidden, "registration is closed")
	}
	var c credentials
	if err := decode(r, &c); err != nil {
		return err
	}
	if err := g.o.Accounts.Register(clientIP(r), c.User, c.Password); err != nil {
		if errors.Is(err, accounts.ErrExists) {
			return fail(http.StatusConflict, imerr.Conflict, "user %q exists", c.User)
		}
		return accountErr(err)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"user": c.User})
	return nil
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request, _ string) error {
	var c credentials
	if err := decode(r, &c); err != nil {
		return err
	}
	if err := g.o.Accounts.Login(clientIP(r), c.User, c.Password); err != nil {
		return accountErr(err)
	}
	return g.issue(w, c.User)
}

// issue answers with a new token for user.
func (g *Gateway) issue(w http.ResponseWriter, user string) error {
	tok, err := g.o.Accounts.IssueToken(user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok.Token, "expires": tok.Expires.UnixMilli()})
	return nil
}

// bearerToken returns the valid token of an Authorization: Bearer header.
func (g *Gateway) bearerToken(r *http.Request) (accounts.TokenInfo, bool) {
	tok, ok := bearerValue(r)
	if !ok {
		return accounts.TokenInfo{}, false
	}
	t, err := g.o.Accounts.ParseToken(tok)
	return t, err == nil
}

// logout revokes the token it was called with and drops the MQTT sessions
// that authenticated with it.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request, _ string) error {
	t, ok := g.bearerToken(r)
	if !ok {
		return fail(http.StatusUnauthorized, imerr.Unauthorized, "invalid or expired token")
	}
	if err := g.o.Accounts.RevokeToken(t); err != nil {
		return err
	}
	if g.o.TokenRevoked != nil {
		g.o.TokenRevoked(t.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// changePassword sets a new password (the current one is required), revokes
// every token of the user, drops their sessions on tokens and passwords, and
// answers with a fresh token so the caller stays signed in.
func (g *Gateway) changePassword(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Password    string `json:"password"`
		NewPassword string `json:"new_password"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := g.o.Accounts.ChangePassword(clientIP(r), user, body.Password, body.NewPassword); err != nil {
		if errors.Is(err, accounts.ErrBadCredentials) {
			return fail(http.StatusForbidden, imerr.Forbidden, "current password is wrong")
		}
		return accountErr(err)
	}
	if g.o.UserRevoked != nil {
		g.o.UserRevoked(user)
	}
	return g.issue(w, user)
}

// revokeAll signs the user out everywhere: every token is revoked (this
// request's too) and every session on a token or a password is dropped.
func (g *Gateway) revokeAll(w http.ResponseWriter, _ *http.Request, user string) error {
	if err := g.o.Accounts.RevokeAll(user); err != nil {
		return err
	}
	if g.o.UserRevoked != nil {
		g.o.UserRevoked(user)
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// bearer returns the user of a valid Authorization: Bearer token, or "".
func (g *Gateway) bearer(r *http.Request) string {
	t, _ := g.bearerToken(r)
	return t.User
}
