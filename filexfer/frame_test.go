package filexfer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

type frameVector struct {
	Name  string `json:"name"`
	Hex   string `json:"hex"`
	Error string `json:"error"`
	Frame struct {
		Type            byte        `json:"type"`
		FileID          string      `json:"fileID"`
		Name            string      `json:"name"`
		Size            uint64      `json:"size"`
		MIME            string      `json:"mime"`
		SHA256          string      `json:"sha256"`
		ChunkSize       uint32      `json:"chunkSize"`
		Ranges          [][2]uint32 `json:"ranges"`
		ChunkID         uint32      `json:"chunkID"`
		Data            string      `json:"data"`
		Reason          byte        `json:"reason"`
		ReencodeDiffers bool        `json:"reencodeDiffers"`
	} `json:"frame"`
}

func loadFrameVectors(t testing.TB) (valid, invalid []frameVector) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "frames.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Valid, Invalid []frameVector }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Valid) == 0 || len(v.Invalid) == 0 {
		t.Fatal("no vectors")
	}
	return v.Valid, v.Invalid
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameVectorsValid(t *testing.T) {
	valid, _ := loadFrameVectors(t)
	for _, v := range valid {
		t.Run(v.Name, func(t *testing.T) {
			raw := mustHex(t, v.Hex)
			want := &Frame{Type: Type(v.Frame.Type), FileID: v.Frame.FileID, Name: v.Frame.Name, Size: v.Frame.Size,
				MIME: v.Frame.MIME, ChunkSize: v.Frame.ChunkSize, ChunkID: v.Frame.ChunkID, Reason: CancelReason(v.Frame.Reason)}
			if v.Frame.SHA256 != "" {
				copy(want.SHA256[:], mustHex(t, v.Frame.SHA256))
			}
			for _, r := range v.Frame.Ranges {
				want.Ranges = append(want.Ranges, Range{r[0], r[1]})
			}
			if want.Type == TypeChunk {
				want.Data = mustHex(t, v.Frame.Data)
			}
			got, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", got, want)
			}
			enc, err := want.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, raw) != v.Frame.ReencodeDiffers {
				t.Fatalf("Encode = %x\n  want %x", enc, raw)
			}
		})
	}
}

func TestFrameVectorsInvalid(t *testing.T) {
	_, invalid := loadFrameVectors(t)
	for _, v := range invalid {
		t.Run(v.Name, func(t *testing.T) {
			_, err := Decode(mustHex(t, v.Hex))
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			if Code(err) != v.Error {
				t.Fatalf("Decode error %v: code %q, want %q", err, Code(err), v.Error)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	big := make([]byte, MaxChunkSize+1)
	for _, tc := range []struct {
		name string
		f    Frame
		want error
	}{
		{"no fileID", Frame{Type: TypeCancel}, ErrInvalidField},
		{"unknown type", Frame{Type: 0x01, FileID: "x"}, ErrUnknownType},
		{"chunk too big for one message", Frame{Type: TypeChunk, FileID: "F234567890123456789012345678901234567890123456789012345678901234", Data: big}, ErrFrameTooBig},
		{"request without ranges", Frame{Type: TypeRequest, FileID: "x"}, ErrInvalidField},
		{"describe chunk size 0", Frame{Type: TypeDescribe, FileID: "x"}, ErrInvalidField},
		{"describe too big", Frame{Type: TypeDescribe, FileID: "x", ChunkSize: 1, Size: MaxFileSize + 1}, ErrInvalidField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.f.Encode(); !errors.Is(err, tc.want) {
				t.Fatalf("Encode error %v, want %v", err, tc.want)
			}
		})
	}
	// The largest chunk with the longest fileID fits exactly.
	f := Frame{Type: TypeChunk, FileID: string(bytes.Repeat([]byte{'F'}, MaxFileIDLen)), Data: big[:MaxChunkSize]}
	b, err := f.Encode()
	if err != nil || len(b) != MaxFrameSize {
		t.Fatalf("max chunk: %d bytes, %v", len(b), err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	valid, invalid := loadFrameVectors(f)
	for _, v := range append(valid, invalid...) {
		f.Add(mustHex(f, v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			if Code(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same frame
		// (trailing extension fields are dropped, so bytes may differ).
		enc, err := fr.Encode()
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v (%+v)", err, fr)
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, fr)
		}
	})
}
