package filexfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Frame type codes (the first byte of every frame). 0x10, 0x20, 0x40 and
// 0x80 are the seed paper's Table 2; 0x11 and 0x12 are mqim extensions.
const (
	TypeDescribe Type = 0x10 // sender -> receiver: file metadata
	TypeComplete Type = 0x11 // receiver -> sender: file received and SHA-256 verified (extension)
	TypeDigest   Type = 0x12 // sender -> receiver: the SHA-256 of a file described without it (extension)
	TypeRequest  Type = 0x20 // receiver -> sender: send these chunks
	TypeChunk    Type = 0x40 // sender -> receiver: one chunk of file data
	TypeCancel   Type = 0x80 // either side: abandon the file
)

// Size limits of the codec.
const (
	// MaxFrameSize is the largest frame either side may send. pion/webrtc v3
	// cannot read a 65536-byte data channel message, so one byte less.
	MaxFrameSize = 65535
	// MaxFileIDLen bounds the fileID field.
	MaxFileIDLen = 64
	// MaxNameLen bounds the name field (bytes of UTF-8).
	MaxNameLen = 1024
	// MaxMIMELen bounds the MIME type field.
	MaxMIMELen = 255
	// MaxFileSize is the largest size a Describe may carry: 2^53-1, so the
	// size is exact in a JavaScript number too.
	MaxFileSize = 1<<53 - 1
	// chunkOverhead is the frame bytes of a Chunk frame other than fileID and data:
	// type(1) + len(2) + len(2) + chunkID(4) + len(2).
	chunkOverhead = 1 + 2 + 2 + 4 + 2
	// MaxChunkSize is the largest chunk that fits a Chunk frame with the longest fileID.
	MaxChunkSize = MaxFrameSize - chunkOverhead - MaxFileIDLen
	// DefaultChunkSize is the chunk size senders use: 16 KiB is what browsers
	// and pion move fastest without fragmentation trouble.
	DefaultChunkSize = 16 * 1024
	// MaxRangesPerRequest is how many ranges one Request frame can carry.
	MaxRangesPerRequest = (MaxFrameSize - 1 - 2 - MaxFileIDLen - 2) / 8
)

// Sentinel errors returned (wrapped) by Decode and the encoders; test them with errors.Is.
var (
	ErrEmpty        = errors.New("filexfer: empty frame")
	ErrUnknownType  = errors.New("filexfer: unknown frame type")
	ErrTruncated    = errors.New("filexfer: truncated frame")
	ErrFrameTooBig  = errors.New("filexfer: frame larger than 65535 bytes")
	ErrInvalidField = errors.New("filexfer: invalid field")
)

var errorCodes = []struct {
	err  error
	code string
}{
	{ErrEmpty, "empty"},
	{ErrUnknownType, "unknown_type"},
	{ErrTruncated, "truncated"},
	{ErrFrameTooBig, "too_big"},
	{ErrInvalidField, "invalid_field"},
}

// Code returns the stable code of a codec error ("truncated", ...) as used
// by the shared test vectors and the JavaScript codec, or "".
func Code(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// Type is a frame's first byte.
type Type byte

func (t Type) String() string {
	switch t {
	case TypeDescribe:
		return "describe"
	case TypeComplete:
		return "complete"
	case TypeDigest:
		return "digest"
	case TypeRequest:
		return "request"
	case TypeChunk:
		return "chunk"
	case TypeCancel:
		return "cancel"
	}
	return fmt.Sprintf("0x%02x", byte(t))
}

// CancelReason says why a file was cancelled: the optional second field of
// a Cancel frame, one byte (an extension; absent means ReasonCancelled).
// Receivers treat values they do not know as ReasonCancelled.
type CancelReason byte

// Cancel reasons.
const (
	ReasonCancelled    CancelReason = 0 // the user gave up
	ReasonDeclined     CancelReason = 1 // the receiver did not accept the file
	ReasonHashMismatch CancelReason = 2 // the file arrived but its SHA-256 differs
	ReasonIO           CancelReason = 3 // reading or writing the file failed
	ReasonUnknownFile  CancelReason = 4 // a request named a file the sender does not have
	ReasonTooLarge     CancelReason = 5 // the file is larger than the receiver takes
	ReasonBusy         CancelReason = 6 // the receiver has too many files in progress
)

// Range is a run of Count chunks starting at chunk First.
type Range struct {
	First uint32
	Count uint32
}

// Frame is one decoded frame. Which fields are meaningful depends on Type:
//
//	Describe: FileID, Name, Size, MIME, SHA256, ChunkSize
//	Complete: FileID
//	Digest:   FileID, SHA256
//	Request:  FileID, Ranges
//	Chunk:    FileID, ChunkID, Data
//	Cancel:   FileID, Reason
//
// Data of a decoded Chunk aliases the decoded buffer.
type Frame struct {
	Type      Type
	FileID    string
	Name      string
	Size      uint64
	MIME      string
	SHA256    [32]byte
	ChunkSize uint32
	Ranges    []Range
	ChunkID   uint32
	Data      []byte
	Reason    CancelReason
}

// Encode returns the wire form of f after validating it.
func (f *Frame) Encode() ([]byte, error) {
	return f.AppendEncode(nil)
}

// AppendEncode appends the wire form of f to dst.
func (f *Frame) AppendEncode(dst []byte) ([]byte, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	start := len(dst)
	dst = append(dst, byte(f.Type))
	dst = appendField(dst, []byte(f.FileID))
	switch f.Type {
	case TypeDescribe:
		// Field order on the wire: fileID, name, size, mime, sha256, chunkSize.
		dst = appendField(dst, []byte(f.Name))
		dst = appendField(dst, binary.BigEndian.AppendUint64(nil, f.Size))
		dst = appendField(dst, []byte(f.MIME))
		dst = appendField(dst, f.SHA256[:])
		dst = appendField(dst, binary.BigEndian.AppendUint32(nil, f.ChunkSize))
	case TypeDigest:
		dst = appendField(dst, f.SHA256[:])
	case TypeRequest:
		dst = binary.BigEndian.AppendUint16(dst, uint16(8*len(f.Ranges)))
		for _, r := range f.Ranges {
			dst = binary.BigEndian.AppendUint32(dst, r.First)
			dst = binary.BigEndian.AppendUint32(dst, r.Count)
		}
	case TypeChunk:
		dst = appendField(dst, binary.BigEndian.AppendUint32(nil, f.ChunkID))
		dst = appendField(dst, f.Data)
	case TypeCancel:
		if f.Reason != ReasonCancelled {
			dst = appendField(dst, []byte{byte(f.Reason)})
		}
	}
	if len(dst)-start > MaxFrameSize {
		return nil, fmt.Errorf("%w: %s frame of %d bytes", ErrFrameTooBig, f.Type, len(dst)-start)
	}
	return dst, nil
}

func appendField(dst, v []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
	return append(dst, v...)
}

func (f *Frame) validate() error {
	if err := checkFileID(f.FileID); err != nil {
		return err
	}
	switch f.Type {
	case TypeDescribe:
		if len(f.Name) > MaxNameLen {
			return fmt.Errorf("%w: name longer than %d bytes", ErrInvalidField, MaxNameLen)
		}
		if len(f.MIME) > MaxMIMELen {
			return fmt.Errorf("%w: mime longer than %d bytes", ErrInvalidField, MaxMIMELen)
		}
		if err := checkUTF8("name", f.Name); err != nil {
			return err
		}
		if err := checkUTF8("mime", f.MIME); err != nil {
			return err
		}
		if f.Size > MaxFileSize {
			return fmt.Errorf("%w: size %d over 2^53-1", ErrInvalidField, f.Size)
		}
		if f.ChunkSize == 0 || f.ChunkSize > MaxChunkSize {
			return fmt.Errorf("%w: chunk size %d not in 1..%d", ErrInvalidField, f.ChunkSize, MaxChunkSize)
		}
	case TypeRequest:
		if len(f.Ranges) == 0 || len(f.Ranges) > MaxRangesPerRequest {
			return fmt.Errorf("%w: %d ranges, want 1..%d", ErrInvalidField, len(f.Ranges), MaxRangesPerRequest)
		}
		for _, r := range f.Ranges {
			if r.Count == 0 || uint64(r.First)+uint64(r.Count) > 1<<32 {
				return fmt.Errorf("%w: range %d+%d", ErrInvalidField, r.First, r.Count)
			}
		}
	case TypeChunk:
		if len(f.Data) > 0xffff {
			return fmt.Errorf("%w: %d data bytes", ErrFrameTooBig, len(f.Data))
		}
	case TypeComplete, TypeCancel, TypeDigest:
	default:
		return fmt.Errorf("%w: 0x%02x", ErrUnknownType, byte(f.Type))
	}
	return nil
}

func checkFileID(id string) error {
	if len(id) == 0 || len(id) > MaxFileIDLen {
		return fmt.Errorf("%w: fileID of %d bytes, want 1..%d", ErrInvalidField, len(id), MaxFileIDLen)
	}
	return checkUTF8("fileID", id)
}

// checkUTF8 refuses text fields that are not UTF-8, so that they decode to
// the same string in Go and in JavaScript.
func checkUTF8(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidField, field)
	}
	return nil
}

// Decode parses one frame. It never panics; malformed input yields an error
// wrapping one of the sentinel errors. Well-formed fields after the ones a
// type defines are ignored, so later versions can append fields.
func Decode(b []byte) (*Frame, error) {
	if len(b) == 0 {
		return nil, ErrEmpty
	}
	if len(b) > MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooBig, len(b))
	}
	f := &Frame{Type: Type(b[0])}
	var want int
	switch f.Type {
	case TypeDescribe:
		want = 6
	case TypeRequest, TypeDigest:
		want = 2
	case TypeChunk:
		want = 3
	case TypeComplete, TypeCancel:
		want = 1
	default:
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownType, b[0])
	}
	fields := make([][]byte, 0, want)
	rest := b[1:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: %s: dangling length byte", ErrTruncated, f.Type)
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest)-2 < n {
			return nil, fmt.Errorf("%w: %s field %d: length %d, %d bytes left", ErrTruncated, f.Type, len(fields)+1, n, len(rest)-2)
		}
		fields = append(fields, rest[2:2+n])
		rest = rest[2+n:]
	}
	if len(fields) < want {
		return nil, fmt.Errorf("%w: %s has %d fields, want %d", ErrTruncated, f.Type, len(fields), want)
	}
	f.FileID = string(fields[0])
	if err := checkFileID(f.FileID); err != nil {
		return nil, err
	}
	switch f.Type {
	case TypeDescribe:
		f.Name = string(fields[1])
		if len(f.Name) > MaxNameLen {
			return nil, fmt.Errorf("%w: name of %d bytes", ErrInvalidField, len(f.Name))
		}
		if err := checkUTF8("name", f.Name); err != nil {
			return nil, err
		}
		if len(fields[2]) != 8 {
			return nil, fmt.Errorf("%w: size field of %d bytes, want 8", ErrInvalidField, len(fields[2]))
		}
		f.Size = binary.BigEndian.Uint64(fields[2])
		if f.Size > MaxFileSize {
			return nil, fmt.Errorf("%w: size %d over 2^53-1", ErrInvalidField, f.Size)
		}
		f.MIME = string(fields[3])
		if len(f.MIME) > MaxMIMELen {
			return nil, fmt.Errorf("%w: mime of %d bytes", ErrInvalidField, len(f.MIME))
		}
		if err := checkUTF8("mime", f.MIME); err != nil {
			return nil, err
		}
		if err := f.setSHA256(fields[4]); err != nil {
			return nil, err
		}
		if len(fields[5]) != 4 {
			return nil, fmt.Errorf("%w: chunkSize field of %d bytes, want 4", ErrInvalidField, len(fields[5]))
		}
		f.ChunkSize = binary.BigEndian.Uint32(fields[5])
		if f.ChunkSize == 0 || f.ChunkSize > MaxChunkSize {
			return nil, fmt.Errorf("%w: chunk size %d not in 1..%d", ErrInvalidField, f.ChunkSize, MaxChunkSize)
		}
	case TypeRequest:
		rs := fields[1]
		if len(rs) == 0 || len(rs)%8 != 0 {
			return nil, fmt.Errorf("%w: ranges field of %d bytes, want a positive multiple of 8", ErrInvalidField, len(rs))
		}
		f.Ranges = make([]Range, len(rs)/8)
		for i := range f.Ranges {
			r := Range{binary.BigEndian.Uint32(rs[8*i:]), binary.BigEndian.Uint32(rs[8*i+4:])}
			if r.Count == 0 || uint64(r.First)+uint64(r.Count) > 1<<32 {
				return nil, fmt.Errorf("%w: range %d+%d", ErrInvalidField, r.First, r.Count)
			}
			f.Ranges[i] = r
		}
	case TypeDigest:
		if err := f.setSHA256(fields[1]); err != nil {
			return nil, err
		}
	case TypeChunk:
		if len(fields[1]) != 4 {
			return nil, fmt.Errorf("%w: chunkID field of %d bytes, want 4", ErrInvalidField, len(fields[1]))
		}
		f.ChunkID = binary.BigEndian.Uint32(fields[1])
		f.Data = fields[2]
	case TypeCancel:
		if len(fields) > 1 {
			if len(fields[1]) != 1 {
				return nil, fmt.Errorf("%w: cancel reason field of %d bytes, want 1", ErrInvalidField, len(fields[1]))
			}
			f.Reason = CancelReason(fields[1][0])
		}
	}
	return f, nil
}

// setSHA256 decodes a sha256 field (of Describe or Digest).
func (f *Frame) setSHA256(field []byte) error {
	if len(field) != len(f.SHA256) {
		return fmt.Errorf("%w: %s sha256 field of %d bytes, want 32", ErrInvalidField, f.Type, len(field))
	}
	copy(f.SHA256[:], field)
	return nil
}
