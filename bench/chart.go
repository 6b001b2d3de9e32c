package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"
	"time"
)

// The chart: one panel per latency section, one horizontal bar per variant,
// its length the variant's p50 on the panel's own scale. Drawn with the
// standard library only, text in a built-in 5x7 pixel font.

const (
	chartWidth = 1000
	scale      = 2           // font pixels per glyph pixel
	charW      = 6 * scale   // glyph plus one column of space
	lineH      = 9 * scale   // glyph plus two rows of space
	labelW     = 40 * charW  // room for the variant names
	barX       = labelW + 16 // where bars start
	barMaxW    = chartWidth - barX - 14*charW
	barH       = 14
	rowH       = 24
	margin     = 16
)

var (
	white    = color.RGBA{255, 255, 255, 255}
	ink      = color.RGBA{30, 30, 30, 255}
	grey     = color.RGBA{150, 150, 150, 255}
	pgwaitC  = color.RGBA{31, 119, 180, 255}
	otherC   = color.RGBA{170, 170, 170, 255}
	ruleC    = color.RGBA{220, 220, 220, 255}
	headingC = color.RGBA{0, 0, 0, 255}
)

type panel struct {
	title  string
	series []*series
}

func writeChart(path string, r *results) error {
	var panels []panel
	if len(r.raw) > 0 {
		panels = append(panels, panel{"1. READ AFTER WRITE, P50 (WRITE ACK TO ROW)", r.raw})
	}
	if len(r.noWait) > 0 {
		panels = append(panels, panel{"2. REPLICA READ, NOTHING TO WAIT FOR, P50", r.noWait})
	}
	if len(r.write) > 0 {
		panels = append(panels, panel{"3. WRITE, P50", r.write})
	}
	if len(r.async) > 0 {
		panels = append(panels, panel{"5. READ AFTER WRITE, SYNCHRONOUS_COMMIT=OFF, P50", r.async})
	}
	if len(panels) == 0 {
		return fmt.Errorf("-png: no latency section ran")
	}
	height := margin + 2*lineH
	for _, p := range panels {
		height += lineH + 6 + rowH*len(p.series) + 14
	}
	height += lineH + margin
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)

	y := margin
	drawText(img, margin, y, "PGWAIT BENCHMARKS: MEDIAN LATENCIES (LOWER IS BETTER)", headingC)
	y += 2 * lineH
	for _, p := range panels {
		drawText(img, margin, y, p.title, headingC)
		y += lineH + 6
		var most time.Duration
		for _, s := range p.series {
			most = max(most, s.p50())
		}
		for _, s := range p.series {
			label := strings.ToUpper(s.name)
			if len(label) > 40 {
				label = label[:40]
			}
			drawText(img, margin, y+(barH-7*scale)/2, label, ink)
			w := 1
			if most > 0 {
				w = max(1, int(float64(barMaxW)*float64(s.p50())/float64(most)))
			}
			c := otherC
			if s.pgwait {
				c = pgwaitC
			}
			fill(img, image.Rect(barX, y, barX+w, y+barH), c)
			drawText(img, barX+w+8, y+(barH-7*scale)/2, fmtMicros(s.p50()), ink)
			y += rowH
		}
		fill(img, image.Rect(margin, y+4, chartWidth-margin, y+5), ruleC)
		y += 14
	}
	drawText(img, margin, y, "BLUE: PGWAIT. EACH PANEL HAS ITS OWN SCALE. SEE DOCS/BENCHMARKS.MD", grey)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.0f US", float64(d)/float64(time.Microsecond))
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src)
}

// drawText draws s (upper case; unknown characters as blanks) with its top
// left corner at x, y.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		if g, ok := font[ch]; ok {
			for row, line := range g {
				for col, px := range line {
					if px == '#' {
						fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
					}
				}
			}
		}
		x += charW
	}
}

// font is a 5x7 pixel font of the characters the chart writes.
var font = map[rune][7]string{
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'%': {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	'_': {".....", ".....", ".....", ".....", ".....", ".....", "#####"},
	'<': {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."},
	'>': {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."},
}
