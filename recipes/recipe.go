// Package recipes loads, validates and plans imgbake recipes: YAML files
// listing the steps that customize a disk image. It knows nothing about how
// steps are carried out.
//
// Every problem found in a recipe is reported, not just the first, as an
// ErrorList whose entries read "FILE:LINE:COL: message".
package recipes

import (
	"github.com/imgbake/imgbake/internal/disksize"

	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Recipe is a validated recipe, ready to be carried out step by step.
type Recipe struct {
	Name   string // from the file, else the file name without extension
	File   string // path as given to Load or Parse
	Dir    string // absolute directory that host paths were resolved against
	SHA256 string // hex SHA-256 of the file's bytes
	Vars   map[string]any
	Steps  []Step
	// DiskSize is the least size the image's disk should have ("20G"):
	// a smaller disk, its root partition and filesystem grow to it before
	// the first step. Absolute, so a second run changes nothing.
	DiskSize string
}

// Step is one entry of a recipe's steps list.
type Step struct {
	Index        int           // 1-based position in the list
	Name         string        // as written by the user; may be empty
	Timeout      time.Duration // 0 means none
	IgnoreErrors bool
	When         *Expr    // nil: always
	ChangedWhen  *Expr    // run/script only; nil: a command always changes
	Creates      string   // run/script only: skip when this image path exists
	Pos          Position // where the step's mapping starts
	Op           Op
	// NoCache (cache: false) ends the cached prefix of a step-layer cache
	// here: this step and those after it always run.
	NoCache bool
	// HostPaths are the host files and directories the operation names
	// (absolute), whose contents a step-layer cache key covers.
	HostPaths []string

	// opNode is the operation's YAML when it uses templates: Recipe.Resolve
	// renders it with the run's facts and decodes it again.
	opNode *yaml.Node
}

// titleLen is how many characters of a step fit on a progress line.
const titleLen = 60

// Title is a one-line label for progress output of at most 60 characters:
// the step's name if it has one, else a summary of its operation.
func (s Step) Title() string {
	t := s.Name
	if t == "" && s.Op != nil {
		t = s.Op.Describe()
	}
	if t == "" {
		t = fmt.Sprintf("step %d", s.Index)
	}
	return headline(t, titleLen)
}

// headline shortens s to one line of at most limit characters, marking
// anything cut off with "…", and blanks control characters that would
// garble a terminal.
func headline(s string, limit int) string {
	h := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, FirstLine(s))
	if utf8.RuneCountInString(h) > limit {
		h = string([]rune(h)[:limit-1]) + "…"
	}
	return h
}

// firstLine returns the first non-blank line of s, trimmed, followed by " …"
// if other non-blank lines follow.
func FirstLine(s string) string {
	var first string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if first != "" {
			return first + " …"
		}
		first = line
	}
	return first
}

// stepKeys are the keys any step may have besides its operation.
var stepKeys = []string{"cache", "changed_when", "creates", "ignore_errors", "name", "timeout", "when"}

// StepFields are the keys any step may have besides its operation, for the
// documentation (imgbake-recipe(5)).
func StepFields() []string { return slices.Clone(stepKeys) }

// Load reads and parses the recipe at path. Host paths in it are relative to
// its directory.
func Load(path string, opts ...Option) (*Recipe, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load recipe: %w", err)
	}
	return Parse(path, data, filepath.Dir(path), opts...)
}

// Parse parses and validates a recipe. file names it in messages; baseDir is
// what relative host paths are resolved against. Problems in the recipe are
// returned as an ErrorList.
func Parse(file string, data []byte, baseDir string, opts ...Option) (*Recipe, error) {
	cfg := loadConfig{vars: map[string]any{}}
	for _, o := range opts {
		o(&cfg)
	}
	dir, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("resolve recipe directory: %w", err)
	}
	sum := sha256.Sum256(data)
	r := &Recipe{File: file, Dir: dir, SHA256: hex.EncodeToString(sum[:])}
	d := &Decoder{file: file, baseDir: dir, overrides: cfg.vars}
	d.recipe(data, r)
	if len(d.errs) > 0 {
		d.errs.sort()
		return nil, d.errs
	}
	if r.Name == "" {
		r.Name = defaultName(file)
	}
	return r, nil
}

func defaultName(file string) string {
	if file == "" || file == "-" {
		return ""
	}
	base := filepath.Base(file)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

func (d *Decoder) recipe(data []byte, r *Recipe) {
	root := d.parseYAML(data)
	if root == nil {
		return
	}
	if IsNull(root) {
		d.Errorf(root, "recipe is empty; it needs a steps list")
		return
	}
	var steps, varsNode *yaml.Node
	d.Fields("", root,
		Field{Key: "name", Decode: func(v *yaml.Node) { r.Name, _ = d.Str("name", v) }},
		Field{Key: "vars", Decode: func(v *yaml.Node) { varsNode = v }},
		Field{Key: "disk_size", Decode: func(v *yaml.Node) {
			size, ok := d.Str("disk_size", v)
			if !ok {
				return
			}
			if disksize.IsRelative(size) {
				d.Errorf(v, "disk_size: %q is relative: a recipe names the size the disk must have (e.g. 20G), so that a second run changes nothing", size)
				return
			}
			if _, err := disksize.Parse(size, 0); err != nil {
				d.Errorf(v, "disk_size: %v", err)
				return
			}
			r.DiskSize = size
		}},
		Field{Key: "steps", Required: true, Decode: func(v *yaml.Node) { steps = v }},
	)
	// Vars first, wherever they are in the file: steps use them.
	r.Vars = map[string]any{}
	if varsNode != nil && !IsNull(varsNode) {
		r.Vars = d.vars(varsNode)
	}
	for k, v := range d.overrides {
		r.Vars[k] = v
	}
	if err := expandVars(r.Vars); err != nil {
		at := root
		if varsNode != nil {
			at = varsNode
		}
		d.Errorf(at, "%v", err)
	}
	d.varsSeen = r.Vars
	// Templates are checked at load with the facts left empty, so a typo
	// in a key fails before anything boots; they are rendered for real
	// once the run knows the facts.
	d.loadData = r.Data(Facts{})
	if steps == nil {
		return
	}
	switch list := ResolveAlias(steps); {
	case IsNull(list) || list.Kind == yaml.SequenceNode && len(list.Content) == 0:
		d.Errorf(steps, "steps: list is empty; a recipe needs at least one step")
	case list.Kind != yaml.SequenceNode:
		d.TypeError("steps", "a list", steps)
	default:
		for i, n := range list.Content {
			r.Steps = append(r.Steps, d.step(n, i+1))
		}
	}
}

// parseYAML returns the root node of data's only document, or nil after
// reporting why there is none.
func (d *Decoder) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.errs = append(d.errs, &Error{Pos: Position{d.file, 1, 1}, Msg: "recipe is empty; it needs a steps list"})
		return nil
	case err != nil:
		d.yamlError(err, data)
		return nil
	}
	// A second document would otherwise be silently ignored.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.Errorf(&extra, "recipe must be a single YAML document")
	case !errors.Is(err, io.EOF):
		d.yamlError(err, data)
	}
	if len(doc.Content) == 0 {
		return &doc
	}
	return doc.Content[0]
}

var (
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): `)
	unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// yamlParserProblems are the messages yaml.v3's parser (as opposed to its
// scanner) produces. It reports their lines 0-based, so they need adjusting.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError reports a syntax error. yaml.v3 gives at most a line, so the
// column is 1 and a missing line means the first.
func (d *Decoder) yamlError(err error, data []byte) {
	msg := err.Error()
	pos := Position{File: d.file, Line: 1, Col: 1}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = "yaml: " + msg[len(m[0]):]
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			pos.Line = n
			if yamlParserProblems[strings.TrimPrefix(msg, "yaml: ")] {
				pos.Line++
			}
		}
	} else if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		// The parser does not say where; the first use is a good guess.
		pos = findAlias(data, m[1], pos)
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	d.errs = append(d.errs, &Error{Pos: pos, Msg: msg})
}

// findAlias returns the position of the first "*name" in data, or fallback.
func findAlias(data []byte, name string, fallback Position) Position {
	re, err := regexp.Compile(`\*` + regexp.QuoteMeta(name) + `(?:[\s,\]}]|$)`)
	if err != nil {
		return fallback
	}
	loc := re.FindIndex(data)
	if loc == nil {
		return fallback
	}
	before := data[:loc[0]]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	fallback.Line = bytes.Count(before, []byte("\n")) + 1
	fallback.Col = utf8.RuneCount(before[lineStart:]) + 1
	return fallback
}

func (d *Decoder) step(n *yaml.Node, index int) Step {
	s := Step{Index: index, Pos: d.pos(n)}
	type opEntry struct {
		kind       string
		key, value *yaml.Node
	}
	var ops []opEntry
	var commandOnly []*yaml.Node // changed_when, creates
	unknownKeys := false
	ok := d.Mapping("", "a step mapping with one operation", n, func(key string, keyNode, value *yaml.Node) {
		switch key {
		case "name":
			s.Name, _ = d.Str("name", value)
		case "timeout":
			s.Timeout = d.timeout("timeout", value)
		case "cache":
			s.NoCache = !d.Bool("cache", value)
		case "ignore_errors":
			s.IgnoreErrors = d.Bool("ignore_errors", value)
		case "when":
			s.When = d.expr("when", value, false)
		case "changed_when":
			s.ChangedWhen = d.expr("changed_when", value, true)
			commandOnly = append(commandOnly, keyNode)
		case "creates":
			s.Creates = d.ImagePath("creates", value)
			commandOnly = append(commandOnly, keyNode)
		default:
			if _, isOp := syntaxes[key]; isOp {
				ops = append(ops, opEntry{key, keyNode, value})
				return
			}
			unknownKeys = true
			d.unknownKey("", keyNode, key, append(Kinds(), stepKeys...),
				fmt.Sprintf("a step needs one operation (%s) and may have %s",
					strings.Join(Kinds(), ", "), strings.Join(stepKeys, ", ")))
		}
	})
	if !ok {
		return s
	}
	if len(ops) == 0 {
		if unknownKeys {
			return s // the unknown key is most likely the misspelled operation
		}
		d.Errorf(n, "step has no operation; add one of: %s", strings.Join(Kinds(), ", "))
		return s
	}
	if len(ops) > 1 {
		kinds := make([]string, len(ops))
		for i, op := range ops {
			kinds[i] = strconv.Quote(op.kind)
		}
		d.Errorf(ops[1].key, "step has more than one operation (%s); use a separate step for each", strings.Join(kinds, ", "))
	}
	if !syntaxes[ops[0].kind].Command {
		for _, k := range commandOnly {
			d.Errorf(k, "%s applies only to %s steps", k.Value, commandKinds())
		}
	}
	// Decode every operation, even surplus ones, so their errors show too.
	for i, op := range ops {
		value := op.value
		templated := hasTemplate(value)
		if templated {
			value = renderNode(value, d.loadData, func(n *yaml.Node, err error) {
				d.Errorf(n, "%s: %v", op.kind, err)
			})
		}
		d.hostPaths = nil
		if decoded := syntaxes[op.kind].Decode(d, value); i == 0 {
			s.Op, s.HostPaths = decoded, d.hostPaths
			if templated {
				s.opNode = op.value
			}
		}
	}
	return s
}

// commandKinds names the kinds that may use changed_when and creates,
// e.g. "run and script".
func commandKinds() string {
	var names []string
	for _, k := range Kinds() {
		if syntaxes[k].Command {
			names = append(names, k)
		}
	}
	switch len(names) {
	case 0:
		return "command"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
