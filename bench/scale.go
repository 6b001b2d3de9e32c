package main

import (
	"context"
	"io"
)

type scaleResult struct{}

func sectionScale(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	return nil
}

func (r *results) scaleTables() []*table { return nil }
