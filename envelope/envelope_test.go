package envelope

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mqim/mqim/imerr"
)

func TestParseDraft(t *testing.T) {
	lim := Limits{BodyBytes: 16}
	cases := []struct {
		name    string
		in      string
		want    Draft
		errCode imerr.Code
	}{
		{"plain text", "hello", Draft{Type: "text", Body: "hello"}, ""},
		{"json", `{"cid":"c-1","type":"text","body":"hi"}`, Draft{CID: "c-1", Type: "text", Body: "hi"}, ""},
		{"type default", `{"body":"hi"}`, Draft{Type: "text", Body: "hi"}, ""},
		{"client from ignored", `{"body":"hi","from":"mallory","id":"x","seq":9}`, Draft{Type: "text", Body: "hi"}, ""},
		{"meta", `{"type":"file","body":"","meta":{"name":"a.txt"}}`, Draft{Type: "file", Meta: json.RawMessage(`{"name":"a.txt"}`)}, ""},
		{"leading space json", ` {"body":"hi"}`, Draft{Type: "text", Body: "hi"}, ""},
		{"malformed", `{"body":`, Draft{}, imerr.Invalid},
		{"body missing", `{"cid":"x"}`, Draft{}, imerr.Invalid},
		{"body number", `{"body":1}`, Draft{}, imerr.Invalid},
		{"empty", "", Draft{}, imerr.Invalid},
		{"blank", "   ", Draft{}, imerr.Invalid},
		{"empty body", `{"body":""}`, Draft{}, imerr.Invalid},
		{"bad utf8", "a\xffb", Draft{}, imerr.Invalid},
		{"too large json", `{"body":"` + strings.Repeat("x", 17) + `"}`, Draft{}, imerr.TooLarge},
		{"too large text", strings.Repeat("x", 17), Draft{}, imerr.TooLarge},
		{"bad cid", `{"cid":"has space","body":"x"}`, Draft{}, imerr.Invalid},
		{"bad type", `{"type":"<b>","body":"x"}`, Draft{}, imerr.Invalid},
		{"meta not object", `{"body":"x","meta":[1]}`, Draft{}, imerr.Invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDraft([]byte(c.in), lim)
			if c.errCode != "" {
				if err == nil || err.Code != c.errCode {
					t.Fatalf("got %+v, err %v; want code %s", got, err, c.errCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got.CID != c.want.CID || got.Type != c.want.Type || got.Body != c.want.Body || string(got.Meta) != string(c.want.Meta) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseReceiptPresenceTyping(t *testing.T) {
	if r, err := ParseReceipt([]byte(`{"type":"read","seq":5,"from":"x"}`)); err != nil || r.Seq != 5 || r.From != "" {
		t.Fatalf("receipt: %+v %v", r, err)
	}
	for _, bad := range []string{`{"type":"seen","seq":1}`, `{"type":"read"}`, `{"type":"read","seq":-1}`, `nope`} {
		if _, err := ParseReceipt([]byte(bad)); err == nil {
			t.Errorf("receipt %s accepted", bad)
		}
	}
	if p, err := ParsePresence([]byte(`{"status":"away","text":"lunch"}`)); err != nil || p.Status != "away" {
		t.Fatalf("presence: %+v %v", p, err)
	}
	for _, bad := range []string{`{"status":"offline"}`, `{"status":"online","text":"` + strings.Repeat("x", 141) + `"}`, `[]`} {
		if _, err := ParsePresence([]byte(bad)); err == nil {
			t.Errorf("presence %s accepted", bad)
		}
	}
	if s, err := ParseTypingState(nil); err != nil || s != "typing" {
		t.Fatalf("typing default: %q %v", s, err)
	}
	if _, err := ParseTypingState([]byte(`{"state":"dancing"}`)); err == nil {
		t.Fatal("bad typing state accepted")
	}
}

func FuzzParseDraft(f *testing.F) {
	for _, s := range []string{"hello", `{"body":"hi","cid":"c"}`, `{"body":"x","meta":{"a":1}}`, `{"body":`, "\xff", `{"type":"file","body":"","meta":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ParseDraft(in, Limits{BodyBytes: 1024})
		if err != nil {
			if err.Code != imerr.Invalid && err.Code != imerr.TooLarge {
				t.Fatalf("unexpected code %s", err.Code)
			}
			return
		}
		// Accepted drafts are always valid UTF-8 within limits and re-encode.
		if !utf8.ValidString(d.Body) || len(d.Body) > 1024 || d.Type == "" {
			t.Fatalf("accepted bad draft %+v", d)
		}
		m := Message{ID: "x", Seq: 1, From: "a", To: "b", Type: d.Type, Body: d.Body, CID: d.CID, Meta: d.Meta}
		var back Message
		if err := json.Unmarshal(Marshal(m), &back); err != nil || back.Body != d.Body {
			t.Fatalf("re-encode: %v %+v", err, back)
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	f.Add([]byte(`{"type":"read","seq":1}`))
	f.Add([]byte(`{"type":"delivered","seq":2,"group":"g"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseReceipt(in)
		if err == nil && (r.Seq == 0 || (r.Type != "read" && r.Type != "delivered")) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
