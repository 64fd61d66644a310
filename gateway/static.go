package gateway

import (
	"net/http"

	"github.com/mqim/mqim/webclient"
)

const notBuilt = `<!doctype html><meta charset="utf-8"><title>mqim</title>
<p>The web client has not been built into this binary. Run <code>scripts/build</code> and start <code>./mqim serve</code> again.</p>`

// static serves the embedded web client with security headers: a CSP that
// allows no inline script, no framing, and no MIME sniffing.
func (g *Gateway) static() http.Handler {
	files := http.FileServerFS(webclient.FS())
	built := webclient.Built()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// connect-src: this origin for the API, SSE and long-poll, its ws(s)
		// form for /mqtt, and the live nodes /api/v1/connect may hand out;
		// not any ws: host, which would let injected script phone home.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src "+g.connectSources(r)+"; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "invalid", "method not allowed")
			return
		}
		if !built {
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(notBuilt))
			return
		}
		files.ServeHTTP(w, r)
	})
}
