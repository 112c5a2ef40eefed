package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pbftnode/pbftnode/benchmarks"
)

// runScale runs `bench --scale PLAN` and writes its report.
func runScale(ctx context.Context, base benchmarks.Config, plan, out string, asJSON bool, stdout, stderr io.Writer) error {
	opts := benchmarks.ScaleOptions{Base: base, Plan: plan}
	if base.Progress != nil {
		opts.OnResult = func(r benchmarks.ScaleResult) {
			_ = benchmarks.WriteScaleTable(base.Progress, []benchmarks.ScaleResult{r})
		}
	}
	results, err := benchmarks.Scale(ctx, opts)
	if errors.Is(err, benchmarks.ErrConfig) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if len(results) > 0 {
		paths, werr := benchmarks.WriteScaleReport(out, results)
		if werr != nil {
			return werr
		}
		fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
		if asJSON {
			if werr := benchmarks.WriteScaleJSON(stdout, results); werr != nil {
				return werr
			}
		} else if werr := benchmarks.WriteScaleTable(stdout, results); werr != nil {
			return werr
		}
	}
	return err
}
