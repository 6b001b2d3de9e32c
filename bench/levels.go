package main

import (
	"context"
	"io"
)

type levelRow struct {
	s       *series
	checked bool
}

func sectionLevels(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	return nil
}

func (r *results) levelTables() []*table  { return nil }
func (r *results) levelTargets() []target { return nil }
