package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
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
	return savePNG(path, img)
}

// savePNG writes img to path as a PNG.
func savePNG(path string, img image.Image) error {
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
	'*': {".....", "#.#.#", ".###.", "#####", ".###.", "#.#.#", "....."},
}

// The CDF chart of section 1: for each variant, the share of reads that
// took at most a given time, the time on a log scale, the share on a
// "nines" scale (0, 0.9, 0.99, 0.999 evenly spaced) so that the tail is as
// visible as the median.

var cdfColors = []color.RGBA{
	pgwaitC,
	{255, 127, 14, 255},  // WAIT FOR LSN alone: orange
	{44, 160, 44, 255},   // green
	{148, 103, 189, 255}, // purple
	{140, 86, 75, 255},   // brown
	{127, 127, 127, 255}, // grey
	{188, 189, 34, 255},  // olive
}

const (
	cdfHeight = 700
	cdfLeft   = 90
	cdfRight  = 40
	cdfNines  = 3 // the y axis ends at 0.999
)

// cdfPath is the CDF image's file name, beside the bar chart's.
func cdfPath(png string) string {
	return strings.TrimSuffix(png, ".png") + "-cdf.png"
}

func writeCDF(path string, title string, ss []*series) error {
	if len(ss) == 0 {
		return fmt.Errorf("-png: section 1 did not run: no CDF")
	}
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, cdfHeight))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	y := margin
	drawText(img, margin, y, title, headingC)
	y += lineH + 4
	for i, s := range ss {
		c := cdfColors[i%len(cdfColors)]
		yy := y + i*lineH
		fill(img, image.Rect(margin, yy+2, margin+20, yy+12), c)
		drawText(img, margin+28, yy, s.name, ink)
	}
	top := y + len(ss)*lineH + 16
	bottom := cdfHeight - 3*lineH
	left, right := cdfLeft, chartWidth-cdfRight

	// The time axis spans the fastest read to the slowest p99.9.
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for _, s := range ss {
		if v := s.sortedSamples(); len(v) > 0 {
			lo = min(lo, v[0])
			hi = max(hi, s.pct(0.999))
		}
	}
	if hi <= lo {
		hi = lo + time.Microsecond
	}
	llo, lhi := math.Log10(float64(lo)), math.Log10(float64(hi))
	xOf := func(d time.Duration) int {
		f := (math.Log10(float64(max(d, lo))) - llo) / (lhi - llo)
		return left + int(math.Round(math.Min(1, f)*float64(right-left)))
	}
	yOf := func(p float64) int {
		n := math.Min(cdfNines, -math.Log10(math.Max(1-p, 1e-9)))
		return bottom - int(math.Round(n/cdfNines*float64(bottom-top)))
	}
	// Grid and labels.
	for _, p := range []float64{0, 0.5, 0.9, 0.99, 0.999} {
		yy := yOf(p)
		fill(img, image.Rect(left, yy, right, yy+1), ruleC)
		l := fmt.Sprint(p)
		drawText(img, left-8-len(l)*charW, yy-7*scale/2, l, ink)
	}
	for _, m := range []float64{1, 2, 5} {
		for e := 1.0; e <= 1e7; e *= 10 {
			d := time.Duration(m * e * float64(time.Microsecond))
			if d < lo || d > hi {
				continue
			}
			xx := xOf(d)
			fill(img, image.Rect(xx, top, xx+1, bottom), ruleC)
			l := fmt.Sprint(m * e)
			drawText(img, xx-len(l)*charW/2, bottom+6, l, ink)
		}
	}
	fill(img, image.Rect(left, bottom, right, bottom+1), ink)
	fill(img, image.Rect(left, top, left+1, bottom), ink)
	drawText(img, left, bottom+6+lineH, "X: MICROSECONDS, WRITE ACK TO ROW (LOG). Y: SHARE OF READS", grey)

	// Each variant's steps, pgwait last so that it is on top.
	for k := len(ss) - 1; k >= 0; k-- {
		s := ss[k]
		v := s.sortedSamples()
		c := cdfColors[k%len(cdfColors)]
		px, py := xOf(lo), yOf(0)
		for i, d := range v {
			if i == len(v)-1 {
				break // p = 1 is off the nines scale
			}
			x, y := xOf(d), yOf(float64(i+1)/float64(len(v)))
			line(img, px, py, x, py, c)
			line(img, x, py, x, y, c)
			px, py = x, y
		}
	}
	return savePNG(path, img)
}

// line draws a 2-pixel-wide horizontal or vertical segment.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	fill(img, image.Rect(x0, y0, x1+2, y1+2), c)
}

const cdfTitle = "1. READ AFTER WRITE, ALL READS: SHARE DONE WITHIN A TIME (CDF)"
