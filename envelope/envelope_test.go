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
		{"reply", `{"body":"yes","reply_to":"0190a1b2c3d4-00002a"}`, Draft{Type: "text", Body: "yes", ReplyTo: "0190a1b2c3d4-00002a"}, ""},
		{"reply to no id", `{"body":"yes","reply_to":"x"}`, Draft{}, imerr.Invalid},
		{"ref on a text", `{"body":"yes","ref":"0190a1b2c3d4-00002a"}`, Draft{}, imerr.Invalid},
		{"edit", `{"type":"edit","ref":"0190a1b2c3d4-00002a","body":"new"}`, Draft{Type: "edit", Body: "new", Ref: "0190a1b2c3d4-00002a"}, ""},
		{"edit without ref", `{"type":"edit","body":"new"}`, Draft{}, imerr.Invalid},
		{"edit to empty", `{"type":"edit","ref":"0190a1b2c3d4-00002a","body":""}`, Draft{}, imerr.Invalid},
		{"edit too large", `{"type":"edit","ref":"0190a1b2c3d4-00002a","body":"` + strings.Repeat("x", 17) + `"}`, Draft{}, imerr.TooLarge},
		{"edit with reply_to", `{"type":"edit","ref":"0190a1b2c3d4-00002a","body":"x","reply_to":"0190a1b2c3d4-00002a"}`, Draft{}, imerr.Invalid},
		{"retract", `{"type":"retract","ref":"0190a1b2c3d4-00002a"}`, Draft{Type: "retract", Ref: "0190a1b2c3d4-00002a"}, ""},
		{"retract with body", `{"type":"retract","ref":"0190a1b2c3d4-00002a","body":"x"}`, Draft{}, imerr.Invalid},
		{"retract with meta", `{"type":"retract","ref":"0190a1b2c3d4-00002a","meta":{"a":1}}`, Draft{}, imerr.Invalid},
		{"reaction", `{"type":"reaction","ref":"0190a1b2c3d4-00002a","body":"👍"}`, Draft{Type: "reaction", Body: "👍", Ref: "0190a1b2c3d4-00002a"}, ""},
		{"reaction removed", `{"type":"reaction","ref":"0190a1b2c3d4-00002a","body":""}`, Draft{Type: "reaction", Ref: "0190a1b2c3d4-00002a"}, ""},
		{"reaction of text", `{"type":"reaction","ref":"0190a1b2c3d4-00002a","body":"ok"}`, Draft{}, imerr.Invalid},
		{"reaction of two", `{"type":"reaction","ref":"0190a1b2c3d4-00002a","body":"👍👍"}`, Draft{}, imerr.Invalid},
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
			if got.CID != c.want.CID || got.Type != c.want.Type || got.Body != c.want.Body || string(got.Meta) != string(c.want.Meta) ||
				got.ReplyTo != c.want.ReplyTo || got.Ref != c.want.Ref {
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

func TestOneEmoji(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"👍", true},
		{"👍🏽", true},      // skin tone
		{"❤️", true},      // presentation selector
		{"👩‍💻", true},     // ZWJ sequence
		{"👨‍👩‍👧‍👦", true}, // family
		{"🇫🇷", true},      // flag
		{"1️⃣", true},     // keycap
		{"🏴󠁧󠁢󠁳󠁣󠁴󠁿", true}, // subdivision flag (tags)
		{"", false},
		{"a", false},
		{"ok", false},
		{"👍👍", false},
		{"👍 ", false},
		{"🇫", false},
		{"🇫🇷🇫", false},
		{"👩‍", false}, // dangling ZWJ
		{"1", false},
		{"中", false},
		{strings.Repeat("👍\u200d", 20) + "👍", false}, // over MaxEmojiBytes
	} {
		if got := OneEmoji(c.in); got != c.want {
			t.Errorf("OneEmoji(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// A retracted message encodes no body; any other message always has one.
func TestMarshalRetracted(t *testing.T) {
	for _, c := range []struct {
		m    Message
		want string
	}{
		{Message{ID: "x", Type: "text"}, `{"id":"x","seq":0,"ts":0,"from":"","type":"text","body":""}`},
		{Message{ID: "x", Type: "text", Retracted: true}, `{"id":"x","seq":0,"ts":0,"from":"","type":"text","retracted":true}`},
		{Message{ID: "x", Type: "text", Body: "b", Edited: 5, ReplyTo: "r", Reactions: map[string][]string{"👍": {"a"}}},
			`{"id":"x","seq":0,"ts":0,"from":"","type":"text","body":"b","reply_to":"r","edited":5,"reactions":{"👍":["a"]}}`},
	} {
		if got := string(Marshal(c.m)); got != c.want {
			t.Errorf("Marshal(%+v) = %s, want %s", c.m, got, c.want)
		}
	}
}
