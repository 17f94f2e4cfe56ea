// Command porcupine-check checks a raftpod history (docs/history-format.md)
// for linearizability against a key-value model (put, get, cas per key) with
// porcupine, within a time bound.
//
//	porcupine-check HISTORY.json [--out viz.html] [--timeout 60s]
//
// It prints one line, "ok", "illegal" or "unknown" (the bound passed), and
// exits 0, 1 or 2; bad input or flags exit 2 with a message on stderr. On
// "illegal" with --out, porcupine's HTML visualization of the longest
// linearizable prefixes is written there.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

const (
	exitOk      = 0
	exitIllegal = 1
	exitOther   = 2
)

type options struct {
	history string
	out     string
	timeout time.Duration
}

// parseArgs accepts flags before and after the history path.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("porcupine-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "", "write porcupine's HTML visualization here when illegal")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up (\"unknown\") after this long")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return o, fmt.Errorf("usage: porcupine-check HISTORY.json [--out viz.html] [--timeout 60s]")
	}
	if o.timeout <= 0 {
		return o, fmt.Errorf("--timeout must be positive")
	}
	o.history = positional[0]
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "porcupine-check: %v\n", err)
		return exitOther
	}
	f, err := os.Open(o.history)
	if err != nil {
		fmt.Fprintf(stderr, "porcupine-check: %v\n", err)
		return exitOther
	}
	h, err := readHistory(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "porcupine-check: %s: %v\n", o.history, err)
		return exitOther
	}
	c := h.counts
	fmt.Fprintf(stderr, "porcupine-check: %d ops (ok=%d fail=%d unknown=%d), %d checked\n",
		c.ok+c.fail+c.unknown, c.ok, c.fail, c.unknown, c.checked)
	started := time.Now()
	result := porcupine.CheckOperationsTimeout(kvModel, h.ops, o.timeout)
	switch result {
	case porcupine.Ok:
		fmt.Fprintln(stdout, "ok")
		return exitOk
	case porcupine.Illegal:
		fmt.Fprintln(stdout, "illegal")
		if o.out != "" {
			visualize(h, o.out, o.timeout-time.Since(started), stderr)
		}
		return exitIllegal
	default:
		fmt.Fprintln(stdout, "unknown")
		fmt.Fprintf(stderr, "porcupine-check: no verdict within %v\n", o.timeout)
		return exitOther
	}
}

// visualize re-checks with linearization info (slower) and writes the HTML, with
// the nemesis's faults as a row of their own.
func visualize(h history, path string, budget time.Duration, stderr io.Writer) {
	_, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, max(budget, time.Second))
	info.AddAnnotations(h.faults)
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		fmt.Fprintf(stderr, "porcupine-check: writing %s: %v\n", path, err)
		return
	}
	fmt.Fprintf(stderr, "porcupine-check: visualization written to %s\n", path)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
