package sandbox

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
)

// The challenge images, base64 PNGs generated once at init.
var (
	// squareImages are the four 8x8 squares of user_image, in the order of imageOptions.
	squareImages = [4]string{
		pngBase64(square(color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff})),
		pngBase64(square(color.NRGBA{R: 0x1f, G: 0x4e, B: 0xd8, A: 0xff})),
		pngBase64(square(color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff})),
		pngBase64(square(color.NRGBA{R: 0xf2, G: 0xc2, B: 0x0f, A: 0xff})),
	}
	// captchaImage shows CaptchaText.
	captchaImage = pngBase64(captcha(CaptchaText))
)

func square(c color.NRGBA) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for y := range 8 {
		for x := range 8 {
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// glyphs is a 5x7 bitmap font for the letters of the captcha.
var glyphs = map[rune][7]string{
	'P': {"11110", "10001", "10001", "11110", "10000", "10000", "10000"},
	'U': {"10001", "10001", "10001", "10001", "10001", "10001", "01110"},
	'E': {"11111", "10000", "10000", "11110", "10000", "10000", "11111"},
	'N': {"10001", "11001", "10101", "10011", "10001", "10001", "10001"},
	'T': {"11111", "00100", "00100", "00100", "00100", "00100", "00100"},
}

// captcha draws text in the 5x7 font, scaled up, each letter nudged up or down and speckled with
// a fixed pattern of noise, like a (very easy) real captcha.
func captcha(text string) image.Image {
	const (
		scale  = 3
		margin = 3 // cells
		cellsW = 6 // glyph width plus one column of spacing
	)
	letters := []rune(text)
	w := (len(letters)*cellsW - 1 + 2*margin) * scale
	h := (7 + 2*margin) * scale
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{
		color.NRGBA{R: 0xf4, G: 0xf1, B: 0xe8, A: 0xff}, // paper
		color.NRGBA{R: 0x22, G: 0x2a, B: 0x44, A: 0xff}, // ink
		color.NRGBA{R: 0xb8, G: 0xb0, B: 0x9c, A: 0xff}, // noise
	})
	// Noise first, so the letters stay readable on top of it.
	for i := range w * h / 9 {
		x := (i*7919 + 13) % w
		y := (i*104729 + 7) % h
		img.SetColorIndex(x, y, 2)
	}
	for i, r := range letters {
		g, ok := glyphs[r]
		if !ok {
			continue
		}
		dy := []int{-1, 1, 0, -1, 1, 0}[i%6]
		for row, bits := range g {
			for col, bit := range bits {
				if bit != '1' {
					continue
				}
				x0 := (margin + i*cellsW + col) * scale
				y0 := (margin+row+dy)*scale + i%2
				for y := y0; y < y0+scale; y++ {
					for x := x0; x < x0+scale; x++ {
						img.SetColorIndex(x, y, 1)
					}
				}
			}
		}
	}
	return img
}

func pngBase64(img image.Image) string {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic("sandbox: encode png: " + err.Error()) // in-memory images always encode
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}
