package main

// The sequential specification: a map of independent registers, one per key,
// with put, get and compare-and-set. Keys never interact, so the history is
// partitioned by key and each partition's state is one register.

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// kvState is one register: absent, or holding a value.
type kvState struct {
	present bool
	value   string
}

func (s kvState) String() string {
	if !s.present {
		return "∅"
	}
	return fmt.Sprintf("%q", s.value)
}

type kvInput struct {
	op       string // put | get | cas
	key      string
	value    string  // put: the value; cas: the new value
	expected kvState // cas only
	unknown  bool    // the outcome was never learned
}

func step(state, input, output interface{}) (bool, interface{}) {
	s := state.(kvState)
	in := input.(kvInput)
	switch in.op {
	case "get":
		return output.(kvState) == s, s
	case "put":
		return true, kvState{present: true, value: in.value}
	case "cas":
		if s == in.expected {
			return true, kvState{present: true, value: in.value}
		}
		// A definite cas succeeded, so it cannot sit where the compare fails; one
		// of unknown outcome may have been evaluated there and changed nothing.
		return in.unknown, s
	}
	return false, s
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		key := op.Input.(kvInput).key
		byKey[key] = append(byKey[key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, byKey[k])
	}
	return parts
}

func describeOperation(input, output interface{}) string {
	in := input.(kvInput)
	mark := ""
	if in.unknown {
		mark = " ?"
	}
	switch in.op {
	case "get":
		return fmt.Sprintf("get(%q) → %v", in.key, output.(kvState))
	case "put":
		return fmt.Sprintf("put(%q, %q)%s", in.key, in.value, mark)
	default:
		return fmt.Sprintf("cas(%q, %v → %q)%s", in.key, in.expected, in.value, mark)
	}
}

func describeMetadata(info interface{}) string {
	m, ok := info.(metadata)
	if !ok {
		return ""
	}
	text := fmt.Sprintf("process=%d node=%s status=%s", m.process, m.node, m.status)
	if m.err != "" {
		text += " error=" + m.err
	}
	return text
}

// kvModel is the per-key register model with partitioning and descriptions
// for porcupine's visualization.
var kvModel = porcupine.Model{
	Partition:                 partitionByKey,
	Init:                      func() interface{} { return kvState{} },
	Step:                      step,
	DescribeOperation:         describeOperation,
	DescribeState:             func(state interface{}) string { return state.(kvState).String() },
	DescribeOperationMetadata: describeMetadata,
}
