// Package imerr defines the protocol-visible error codes shared by MQTT error
// notices and the HTTP API. The code strings are part of the wire contract
// (docs/protocol.md): clients switch on them, so they never change.
package imerr

import (
	"errors"
	"fmt"
)

// Code is a stable, protocol-visible error code.
type Code string

// The codes of docs/protocol.md.
const (
	Forbidden    Code = "forbidden"
	Invalid      Code = "invalid"
	TooLarge     Code = "too_large"
	RateLimited  Code = "rate_limited"
	NotFound     Code = "not_found"
	Unauthorized Code = "unauthorized"
	Conflict     Code = "conflict"
	Internal     Code = "internal"
	// QuotaExceeded: the user holds as much of something as it may (open
	// streams, retained messages, groups). Unlike RateLimited, waiting
	// does not help; releasing something does.
	QuotaExceeded Code = "quota_exceeded"
	// Busy: the server could not take the request now (HTTP 503 with
	// Retry-After); nothing was done, retry.
	Busy Code = "busy"
	// StorageFull: the server's disk is below its free-space reserve; the
	// write was refused and nothing of it was stored. Retry later.
	StorageFull Code = "storage_full"
	// Unavailable: the write could not be replicated now (a cluster node
	// cut off from a majority of nodes, or the log electing a leader);
	// it was not acknowledged. Retry (a cid makes that safe).
	Unavailable Code = "unavailable"
	// Reset: a sync cursor is from another store epoch (the history was
	// replaced); drop the local cache and sync from the start.
	Reset Code = "reset"
)

// Error is an error with a stable code and a human-readable detail.
type Error struct {
	Code   Code
	Detail string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Detail }

// New returns an *Error with a formatted detail.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it wraps an *Error, else Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
