package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteChart(t *testing.T) {
	var s []sample
	for r := 0; r < 3; r++ {
		for _, c := range []int{50, 256} {
			s = append(s, mkSample("proxy", kindNginx, c, r, 40000, 10), mkSample("proxy", kindSluice, c, r, 45000, 9))
		}
	}
	rows := summarize(s, "proxy", []string{kindNginx, kindSluice}, []int{50, 256}, nil)
	path := filepath.Join(t.TempDir(), "sub", "chart.png")
	if err := writeChart(path, rows); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 400 {
		t.Fatalf("chart is %v", b)
	}
	if err := writeChart(path, nil); err == nil {
		t.Fatal("empty chart accepted")
	}
}
