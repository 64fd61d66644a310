package profiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"

	// WebP decoding (golang.org/x/image has no encoder: WebP avatars are
	// re-encoded as PNG).
	_ "golang.org/x/image/webp"
)

// Avatar limits. An image is checked by its header (image.DecodeConfig)
// before it is decoded, so a small file claiming huge dimensions (a
// decompression bomb) costs nothing: decoding MaxAvatarPixels takes about
// 4 bytes a pixel (32 MiB).
const (
	MaxAvatarBytes  = 1 << 20
	MaxAvatarSide   = 4096
	MaxAvatarPixels = 8 << 20
	// ThumbSize is the side of the stored square thumbnail.
	ThumbSize = 128
)

// Errors of Thumbnail.
var (
	ErrAvatarFormat = errors.New("profiles: not a PNG, JPEG or WebP image")
	ErrAvatarSize   = errors.New("profiles: image too large")
)

// Thumb is a stored avatar: the server's own encoding.
type Thumb struct {
	Data []byte
	Type string // image/png or image/jpeg
	ETag string // quoted, as sent in the ETag header
}

// Thumbnail decodes an uploaded image (PNG, JPEG or WebP, at most
// MaxAvatarBytes, MaxAvatarSide and MaxAvatarPixels), crops it to its
// centred square and scales that to ThumbSize, re-encoded as JPEG (from a
// JPEG) or PNG (anything else, which may have transparency). Nothing of the
// upload but its pixels survives: no metadata, no trailing bytes, no
// polyglot content.
func Thumbnail(upload []byte) (Thumb, error) {
	if len(upload) > MaxAvatarBytes {
		return Thumb{}, fmt.Errorf("%w: %d bytes, at most %d", ErrAvatarSize, len(upload), MaxAvatarBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(upload))
	if err != nil || (format != "png" && format != "jpeg" && format != "webp") {
		return Thumb{}, ErrAvatarFormat
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxAvatarSide || cfg.Height > MaxAvatarSide || cfg.Width*cfg.Height > MaxAvatarPixels {
		return Thumb{}, fmt.Errorf("%w: %dx%d pixels, at most %dx%d and %d in all", ErrAvatarSize, cfg.Width, cfg.Height, MaxAvatarSide, MaxAvatarSide, MaxAvatarPixels)
	}
	src, _, err := image.Decode(bytes.NewReader(upload))
	if err != nil {
		return Thumb{}, fmt.Errorf("%w: %v", ErrAvatarFormat, err)
	}
	dst := squareThumb(src, ThumbSize)
	var buf bytes.Buffer
	t := Thumb{Type: "image/png"}
	if format == "jpeg" {
		t.Type = "image/jpeg"
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, dst)
	}
	if err != nil {
		return Thumb{}, fmt.Errorf("profiles: encode avatar: %w", err)
	}
	t.Data = buf.Bytes()
	sum := sha256.Sum256(t.Data)
	t.ETag = `"` + hex.EncodeToString(sum[:12]) + `"`
	return t, nil
}

// squareThumb crops src to its centred square and scales it to size x size
// by averaging the source pixels under each target pixel (a box filter:
// downscaling without aliasing; a smaller source is scaled up by nearest
// neighbour, one source pixel per target pixel).
func squareThumb(src image.Image, size int) *image.NRGBA {
	b := src.Bounds()
	side := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-side)/2, b.Min.Y+(b.Dy()-side)/2
	dst := image.NewNRGBA(image.Rect(0, 0, size, size))
	for ty := range size {
		sy0, sy1 := y0+ty*side/size, y0+(ty+1)*side/size
		if sy1 == sy0 {
			sy1 = sy0 + 1
		}
		for tx := range size {
			sx0, sx1 := x0+tx*side/size, x0+(tx+1)*side/size
			if sx1 == sx0 {
				sx1 = sx0 + 1
			}
			var r, g, bl, a, n uint64
			for sy := sy0; sy < sy1; sy++ {
				for sx := sx0; sx < sx1; sx++ {
					// Premultiplied 16-bit: averaging is correct with alpha.
					cr, cg, cb, ca := src.At(sx, sy).RGBA()
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			c := color.RGBA64{uint16(r / n), uint16(g / n), uint16(bl / n), uint16(a / n)}
			dst.Set(tx, ty, c)
		}
	}
	return dst
}
