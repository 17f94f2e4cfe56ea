package main

// Reading a raftpod history file (docs/history-format.md) into porcupine
// operations: "fail" operations and reads of unknown outcome are left out
// (they changed nothing), writes of unknown outcome get a return time after
// everything else, so the checker may place them anywhere after their call,
// including "never".

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/anishathalye/porcupine"
)

const historyFormat = "raftpod-history/1"

type rawOutput struct {
	Value json.RawMessage `json:"value"`
}

type rawOp struct {
	Process  *int            `json:"process"`
	Node     string          `json:"node"`
	Op       string          `json:"op"`
	Key      *string         `json:"key"`
	Value    *string         `json:"value"`
	Expected json.RawMessage `json:"expected"`
	New      *string         `json:"new"`
	Call     *int64          `json:"call"`
	Return   *int64          `json:"return"`
	Status   string          `json:"status"`
	Output   *rawOutput      `json:"output"`
	Error    string          `json:"error"`
}

type rawHistory struct {
	Format  string          `json:"format"`
	Ops     []rawOp         `json:"ops"`
	Nemesis json.RawMessage `json:"nemesis"`
}

type rawFault struct {
	Time  int64      `json:"time"`
	Event string     `json:"event"`
	Kind  string     `json:"kind"`
	Node  string     `json:"node"`
	Mode  string     `json:"mode"`
	Links [][]string `json:"links"`
}

// faultAnnotations turns the optional nemesis timeline into one "nemesis" row
// of the visualization: a box per fault, from its start to its undoing. The
// checker itself ignores the timeline, so anything malformed is just skipped.
func faultAnnotations(raw json.RawMessage) []porcupine.Annotation {
	var events []rawFault
	if len(raw) == 0 || json.Unmarshal(raw, &events) != nil {
		return nil
	}
	var out []porcupine.Annotation
	var open *porcupine.Annotation
	mode := ""
	for _, e := range events {
		switch e.Event {
		case "start":
			mode = e.Mode
			open = &porcupine.Annotation{
				Tag:         "nemesis",
				Start:       e.Time,
				End:         e.Time,
				Description: fmt.Sprintf("%s %s", e.Kind, e.Node),
				Details:     fmt.Sprintf("%s %s", e.Kind, e.Node),
			}
		case "cut":
			if open != nil {
				open.Details += fmt.Sprintf(": %s %v", mode, e.Links)
			}
		case "heal", "resume", "restart":
			if open != nil {
				open.End = e.Time
				out = append(out, *open)
				open = nil
			}
		}
	}
	if open != nil {
		out = append(out, *open)
	}
	return out
}

// counts tallies the operations of a history by status, and those checked.
type counts struct {
	ok, fail, unknown, checked int
}

// optionalValue decodes a JSON string or null (null: the key is absent).
func optionalValue(raw json.RawMessage, field string) (kvState, error) {
	if len(raw) == 0 {
		return kvState{}, fmt.Errorf("%s is missing (use null for an absent key)", field)
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return kvState{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return kvState{}, fmt.Errorf("%s must be a string or null", field)
	}
	return kvState{present: true, value: s}, nil
}

type metadata struct {
	process           int
	node, status, err string
}

// parseOp validates one operation; keep=false means the checker ignores it.
func parseOp(r rawOp) (op porcupine.Operation, keep bool, err error) {
	if r.Process == nil || *r.Process < 0 {
		return op, false, fmt.Errorf("process must be a non-negative integer")
	}
	if r.Key == nil {
		return op, false, fmt.Errorf("key is missing")
	}
	if r.Call == nil {
		return op, false, fmt.Errorf("call (ns) is missing")
	}
	switch r.Status {
	case "ok", "fail":
		if r.Return == nil {
			return op, false, fmt.Errorf("return (ns) is missing for status %q", r.Status)
		}
		if *r.Return < *r.Call {
			return op, false, fmt.Errorf("return %d is before call %d", *r.Return, *r.Call)
		}
	case "unknown":
	default:
		return op, false, fmt.Errorf("status must be ok, fail or unknown, got %q", r.Status)
	}
	in := kvInput{op: r.Op, key: *r.Key, unknown: r.Status == "unknown"}
	var out kvState
	switch r.Op {
	case "put":
		if r.Value == nil {
			return op, false, fmt.Errorf("put needs a string value")
		}
		in.value = *r.Value
	case "get":
		if r.Status == "ok" {
			if r.Output == nil {
				return op, false, fmt.Errorf("an ok get needs output.value (string or null)")
			}
			if out, err = optionalValue(r.Output.Value, "output.value"); err != nil {
				return op, false, err
			}
		}
	case "cas":
		if in.expected, err = optionalValue(r.Expected, "expected"); err != nil {
			return op, false, err
		}
		if r.New == nil {
			return op, false, fmt.Errorf("cas needs a string new")
		}
		in.value = *r.New
	default:
		return op, false, fmt.Errorf("op must be put, get or cas, got %q", r.Op)
	}
	keep = r.Status == "ok" || (r.Status == "unknown" && r.Op != "get")
	op = porcupine.Operation{
		ClientId: *r.Process,
		Input:    in,
		Call:     *r.Call,
		Output:   out,
		Metadata: metadata{process: *r.Process, node: r.Node, status: r.Status, err: r.Error},
	}
	if r.Return != nil {
		op.Return = *r.Return
	}
	return op, keep, nil
}

// history is what the checker needs from a history file.
type history struct {
	ops    []porcupine.Operation
	counts counts
	faults []porcupine.Annotation // for the visualization only
}

// readHistory parses a history; unknown-outcome writes return after every other event.
func readHistory(src io.Reader) (history, error) {
	var h rawHistory
	if err := json.NewDecoder(src).Decode(&h); err != nil {
		return history{}, fmt.Errorf("not a JSON history object: %w", err)
	}
	if h.Format != historyFormat {
		return history{}, fmt.Errorf("format must be %q, got %q", historyFormat, h.Format)
	}
	if h.Ops == nil {
		return history{}, fmt.Errorf("ops (an array) is missing")
	}
	ops, c, err := convertOps(h.Ops)
	if err != nil {
		return history{}, err
	}
	return history{ops: ops, counts: c, faults: faultAnnotations(h.Nemesis)}, nil
}

func convertOps(raw []rawOp) ([]porcupine.Operation, counts, error) {
	var c counts
	var ops []porcupine.Operation
	var unknown []int
	var last int64
	for i, r := range raw {
		op, keep, err := parseOp(r)
		if err != nil {
			return nil, c, fmt.Errorf("ops[%d]: %w", i, err)
		}
		switch r.Status {
		case "ok":
			c.ok++
		case "fail":
			c.fail++
		default:
			c.unknown++
		}
		last = max(last, op.Call, op.Return)
		if !keep {
			continue
		}
		if r.Status == "unknown" {
			unknown = append(unknown, len(ops))
		}
		ops = append(ops, op)
	}
	for _, i := range unknown {
		ops[i].Return = last + 1
	}
	// The visualization draws one row per client id up to the largest: number the
	// processes densely (the original number stays in the metadata).
	rows := map[int]int{}
	for i := range ops {
		row, seen := rows[ops[i].ClientId]
		if !seen {
			row = len(rows)
			rows[ops[i].ClientId] = row
		}
		ops[i].ClientId = row
	}
	c.checked = len(ops)
	return ops, c, nil
}
