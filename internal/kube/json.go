package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ParseJSON reads `kubectl get pods|nodes|events -o json` (a List, a
// PodList, a NodeList, one Pod or Node), through the same conversion as
// the live check (FromPod, FromNode, FromEvent). Text before the JSON (a
// prompt) is skipped; a truncated list gives the items before the cut.
func ParseJSON(text string) (Parsed, error) {
	var out Parsed
	start := -1
	for i, l := range strings.Split(text, "\n") {
		if c := PromptCommand(l); c != "" {
			out.Command = c
		}
		if strings.HasPrefix(strings.TrimSpace(l), "{") {
			start = i
			break
		}
	}
	if start < 0 {
		return out, errors.New("no JSON object found")
	}
	body := strings.Join(strings.Split(text, "\n")[start:], "\n")
	out.Cluster.Source = "kubectl get -o json"

	// One object (kubectl get pod NAME -o json) is read whole.
	var whole json.RawMessage
	if json.NewDecoder(strings.NewReader(body)).Decode(&whole) == nil {
		var head struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(whole, &head) == nil && head.Kind != "" && !strings.HasSuffix(head.Kind, "List") {
			if !addObject(&out.Cluster, whole, "") {
				return out, fmt.Errorf("a %s object, not a pod, node or event", head.Kind)
			}
			return out, nil
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))

	// Walk the top object by hand, so that a list cut short still gives
	// its first items.
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out, fmt.Errorf("not a JSON object: %v", err)
	}
	var kind string
	top := map[string]json.RawMessage{}
	n, bad := 0, 0
	var cut error
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			cut = err
			break
		}
		key, _ := tok.(string)
		if key != "items" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				cut = err
				break
			}
			top[key] = raw
			if key == "kind" {
				_ = json.Unmarshal(raw, &kind)
			}
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			cut = fmt.Errorf("items is not a list")
			break
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				cut = err
				break
			}
			n++
			if !addObject(&out.Cluster, raw, kindFromList(kind)) {
				bad++
			}
		}
		if cut != nil {
			break
		}
		if _, err := dec.Token(); err != nil { // ]
			cut = err
			break
		}
	}
	if cut != nil {
		if errors.Is(cut, io.ErrUnexpectedEOF) || errors.Is(cut, io.EOF) || strings.Contains(cut.Error(), "unexpected end") {
			out.Notes = append(out.Notes, fmt.Sprintf("The JSON is cut short: %d %s read before the cut.", n, plural(n, "item was", "items were")))
		} else {
			out.Notes = append(out.Notes, fmt.Sprintf("The JSON is damaged (%v): %d %s read before it.", cut, n, plural(n, "item was", "items were")))
		}
	}
	if bad > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d %s neither pods, nodes nor events, or unreadable.", bad, plural(bad, "item was", "items were")))
	}
	if len(out.Cluster.Pods)+len(out.Cluster.Nodes)+len(out.Cluster.Events) == 0 {
		if cut != nil {
			return out, fmt.Errorf("no pod or node could be read: %w", cut)
		}
		return out, errors.New("no pod, node or event in the JSON")
	}
	return out, nil
}

func kindFromList(kind string) string {
	switch kind {
	case "PodList":
		return "Pod"
	case "NodeList":
		return "Node"
	case "EventList":
		return "Event"
	}
	return ""
}

// addObject decodes one item by its kind (or the list's) into c.
func addObject(c *Cluster, raw json.RawMessage, listKind string) bool {
	var head struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return false
	}
	kind := head.Kind
	if kind == "" {
		kind = listKind
	}
	dec := func(v any) bool {
		d := json.NewDecoder(bytes.NewReader(raw))
		return d.Decode(v) == nil
	}
	switch kind {
	case "Pod":
		var p APIPod
		if !dec(&p) {
			return false
		}
		c.Pods = append(c.Pods, FromPod(&p))
	case "Node":
		var n APINode
		if !dec(&n) {
			return false
		}
		c.Nodes = append(c.Nodes, FromNode(&n))
	case "Event":
		var e APIEvent
		if !dec(&e) {
			return false
		}
		if ev, ok := FromEvent(&e); ok {
			c.Events = append(c.Events, ev)
		}
	default:
		return false
	}
	return true
}
