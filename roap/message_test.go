package roap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type roapVector struct {
	Name    string          `json:"name"`
	JSON    string          `json:"json"`
	Message json.RawMessage `json:"message"`
	Error   string          `json:"error"`
}

func loadROAPVectors(t testing.TB) (valid, invalid []roapVector) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "roap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Valid, Invalid []roapVector }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Valid) == 0 || len(v.Invalid) == 0 {
		t.Fatal("no vectors")
	}
	return v.Valid, v.Invalid
}

// canonical decodes JSON into a generic value with nulls removed, since
// Encode omits absent optional fields and browsers send some as null.
func canonical(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var strip func(any) any
	strip = func(v any) any {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				if x == nil {
					delete(m, k)
				} else {
					m[k] = strip(x)
				}
			}
		}
		return v
	}
	return strip(v)
}

func TestROAPVectorsValid(t *testing.T) {
	valid, _ := loadROAPVectors(t)
	for _, v := range valid {
		t.Run(v.Name, func(t *testing.T) {
			m, err := Decode([]byte(v.JSON))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			enc, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if got, want := canonical(t, enc), canonical(t, v.Message); !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded+encoded = %v\nwant %v", got, want)
			}
		})
	}
}

func TestROAPVectorsInvalid(t *testing.T) {
	_, invalid := loadROAPVectors(t)
	for _, v := range invalid {
		t.Run(v.Name, func(t *testing.T) {
			_, err := Decode([]byte(v.JSON))
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			if Code(err) != v.Error {
				t.Fatalf("Decode error %v: code %q, want %q", err, Code(err), v.Error)
			}
		})
	}
}

func TestValidateBuiltMessages(t *testing.T) {
	idx := uint16(0)
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"offer", Message{Type: TypeOffer, From: "a", To: "b", SessionID: "s", SDP: "v=0\r\n"}, nil},
		{"candidate", Message{Type: TypeCandidate, From: "a", To: "b", SessionID: "s", Candidate: &Candidate{Candidate: "candidate:1", SDPMLineIndex: &idx}}, nil},
		{"offer without sdp", Message{Type: TypeOffer, From: "a", To: "b", SessionID: "s"}, ErrMissingField},
		{"ok with sdp", Message{Type: TypeOK, From: "a", To: "b", SessionID: "s", SDP: "v=0\r\n"}, ErrUnexpectedField},
		{"bad from", Message{Type: TypeOK, From: "A", To: "b", SessionID: "s"}, ErrInvalidField},
		{"no type", Message{From: "a", To: "b", SessionID: "s"}, ErrMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Encode()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Encode error %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecodeROAP(f *testing.F) {
	valid, invalid := loadROAPVectors(f)
	for _, v := range append(valid, invalid...) {
		if len(v.JSON) < 4096 {
			f.Add([]byte(v.JSON))
		}
	}
	f.Add([]byte(`{"type":"CANDIDATE","from":"a","to":"b","sessionID":"s","candidate":{"candidate":"x","sdpMLineIndex":1e2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if Code(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v (%+v)", err, m)
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, m)
		}
		if strings.Contains(string(enc), "null") && m.Candidate == nil {
			t.Fatalf("encoded nulls: %s", enc)
		}
	})
}
