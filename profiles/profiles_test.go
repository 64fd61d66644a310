package profiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/mqim/mqim/kvstore"
)

func TestCleanDisplayName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"  Zoë Ångström  ", "Zoë Ångström", true},
		{"山田 太郎", "山田 太郎", true},
		{"👩\u200d💻 dev", "👩\u200d💻 dev", true}, // ZWJ emoji stays
		{"", "", true},
		{" \t ", "", true},
		{strings.Repeat("é", MaxDisplayName), strings.Repeat("é", MaxDisplayName), true},
		{strings.Repeat("é", MaxDisplayName+1), "", false},
		{"admin\u202Egnp.exe", "", false}, // right-to-left override
		{"a\u2066b", "", false},
		{"a\u200Fb", "", false},
		{"a\u061Cb", "", false},
		{"two\nlines", "", false},
		{"bell\a", "", false},
		{"c1\u0085x", "", false},
		{"sep\u2028x", "", false},
		{"bom\uFEFF", "", false},
		{"bad\xff", "", false},
		{"repl\uFFFD", "", false},
	}
	for _, c := range cases {
		got, err := CleanDisplayName(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("CleanDisplayName(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrDisplayName) {
			t.Errorf("error %v is not ErrDisplayName", err)
		}
	}
}

func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bombPNG is a 1x1 PNG whose header claims w x h pixels (CRC fixed up).
func bombPNG(t *testing.T, w, h uint32) []byte {
	b := encodePNG(t, testImage(1, 1))
	// signature (8), IHDR length (4), "IHDR" (4), width, height...
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestThumbnail(t *testing.T) {
	var jpg, gf bytes.Buffer
	if err := jpeg.Encode(&jpg, testImage(300, 200), nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gf, testImage(10, 10), nil); err != nil {
		t.Fatal(err)
	}
	webp, err := os.ReadFile("testdata/sample.webp")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		upload  []byte
		want    error
		outType string
	}{
		{"png wide", encodePNG(t, testImage(400, 100)), nil, "image/png"},
		{"png tiny", encodePNG(t, testImage(3, 5)), nil, "image/png"},
		{"jpeg", jpg.Bytes(), nil, "image/jpeg"},
		{"webp", webp, nil, "image/png"},
		{"gif", gf.Bytes(), ErrAvatarFormat, ""},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), ErrAvatarFormat, ""},
		{"html", []byte(`<!doctype html><html><script>alert(1)</script></html>`), ErrAvatarFormat, ""},
		{"empty", nil, ErrAvatarFormat, ""},
		{"truncated png", encodePNG(t, testImage(64, 64))[:60], ErrAvatarFormat, ""},
		{"oversize", make([]byte, MaxAvatarBytes+1), ErrAvatarSize, ""},
		{"bomb", bombPNG(t, 100000, 100000), ErrAvatarSize, ""},
		{"too many pixels", bombPNG(t, 4096, 4096), ErrAvatarSize, ""},
		{"too wide", bombPNG(t, 5000, 10), ErrAvatarSize, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th, err := Thumbnail(c.upload)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if c.want != nil {
				return
			}
			if th.Type != c.outType || th.ETag == "" || bytes.Equal(th.Data, c.upload) {
				t.Fatalf("thumb type %s etag %s", th.Type, th.ETag)
			}
			img, format, err := image.Decode(bytes.NewReader(th.Data))
			if err != nil || "image/"+format != c.outType {
				t.Fatalf("stored thumbnail does not decode as %s: %v", c.outType, err)
			}
			if b := img.Bounds(); b.Dx() != ThumbSize || b.Dy() != ThumbSize {
				t.Fatalf("thumbnail is %v", b)
			}
		})
	}
}

// TestChanged: a profile another node wrote is taken in by Changed (and
// its removal); this node's own changes are in the cache at once.
func TestChanged(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDisplayName("alice", " Alice "); err != nil || s.Get("alice").DisplayName != "Alice" {
		t.Fatalf("own change: %+v %v", s.Get("alice"), err)
	}
	other := kvstore.Local{DB: db}
	if err := other.Commit(context.Background(), kvstore.Set([]byte("pf/bob"), []byte(`{"display_name":"Bob","dm_policy":"contacts"}`))); err != nil {
		t.Fatal(err)
	}
	s.Changed([]byte("pf/bob"))
	s.Changed([]byte("g/bob"))
	if p := s.Get("bob"); p.DisplayName != "Bob" || p.DMPolicy != DMContacts {
		t.Fatalf("another node's profile: %+v", p)
	}
	if err := other.Commit(context.Background(), kvstore.Batch{Delete: [][]byte{[]byte("pf/bob")}}); err != nil {
		t.Fatal(err)
	}
	s.Changed([]byte("pf/bob"))
	if p := s.Get("bob"); p != (Profile{}) {
		t.Fatalf("after removal: %+v", p)
	}
}
