package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mqim/mqim/imerr"
)

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	status     int
	code       imerr.Code
	msg        string
	retryAfter int // seconds, for 429 and 503
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, code imerr.Code, format string, a ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

// httpStatus maps the protocol's error codes to HTTP.
var httpStatus = map[imerr.Code]int{
	imerr.Reset:         http.StatusGone,
	imerr.Forbidden:     http.StatusForbidden,
	imerr.Invalid:       http.StatusBadRequest,
	imerr.TooLarge:      http.StatusRequestEntityTooLarge,
	imerr.RateLimited:   http.StatusTooManyRequests,
	imerr.QuotaExceeded: http.StatusTooManyRequests,
	imerr.NotFound:      http.StatusNotFound,
	imerr.Conflict:      http.StatusConflict,
	imerr.Internal:      http.StatusInternalServerError,
	imerr.StorageFull:   http.StatusInsufficientStorage,
	imerr.Unavailable:   http.StatusServiceUnavailable,
}

// refusal is how the API answers a store's sentinel error.
type refusal struct {
	err    error
	status int
	code   imerr.Code
	msg    string
}

// refuse answers err by the first refusal whose sentinel it wraps, or
// returns err as it is (a 500, logged).
func refuse(err error, rs ...refusal) error {
	for _, r := range rs {
		if errors.Is(err, r.err) {
			return fail(r.status, r.code, "%s", r.msg)
		}
	}
	return err
}

// imFail is the HTTP answer to a refusal of the chat service.
func imFail(e *imerr.Error) error {
	status := httpStatus[e.Code]
	if status == 0 {
		status = http.StatusBadRequest
	}
	return fail(status, e.Code, "%s", e.Detail)
}
