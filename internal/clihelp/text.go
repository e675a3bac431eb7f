// Package clihelp lays imgbake's command-line help out for an 80-column
// terminal: the templates urfave/cli renders (flag names on a line of their
// own, their usage wrapped below, descriptions reflowed) and the pieces the
// man pages reuse (flag syntax and usage, paragraphs).
package clihelp

import (
	"strings"
	"unicode/utf8"
)

// Width is the terminal width help is laid out for.
const Width = 80

// Block is a run of lines of a description: prose to be reflowed, or
// verbatim lines (examples, lists laid out by hand) that keep their breaks.
type Block struct {
	Verbatim bool
	Lines    []string
	// Paragraph is set when a blank line came before the block: it starts
	// a new paragraph rather than continuing the previous one (a prose line
	// such as "Example:" followed by its verbatim lines).
	Paragraph bool
}

// Blocks splits text into paragraphs at blank lines, and each paragraph into
// prose and verbatim blocks: a line that begins with a space is verbatim.
// Verbatim lines lose the indentation they all share.
func Blocks(text string) []Block {
	var out []Block
	blank := true
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			blank = true
			continue
		}
		verbatim := line[0] == ' ' || line[0] == '\t'
		if n := len(out); n > 0 && !blank && out[n-1].Verbatim == verbatim {
			out[n-1].Lines = append(out[n-1].Lines, line)
		} else {
			out = append(out, Block{Verbatim: verbatim, Lines: []string{line}, Paragraph: blank && n > 0})
		}
		blank = false
	}
	for i := range out {
		if out[i].Verbatim {
			out[i].Lines = dedent(out[i].Lines)
		}
	}
	return out
}

func dedent(lines []string) []string {
	common := -1
	for _, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[common:]
	}
	return out
}

// Fill lays text out at width with every line indented by indent spaces:
// prose is reflowed, verbatim blocks are indented three more and otherwise
// kept. The first line carries no indentation, so a template can place it
// after its own.
func Fill(text string, indent, width int) string {
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	for i, blk := range Blocks(text) {
		if i > 0 {
			b.WriteString("\n")
			if blk.Paragraph {
				b.WriteString("\n")
			}
		}
		var lines []string
		if blk.Verbatim {
			for _, l := range blk.Lines {
				lines = append(lines, "   "+l)
			}
		} else {
			lines = Wrap(strings.Join(blk.Lines, " "), width-indent)
		}
		for j, l := range lines {
			if i > 0 || j > 0 {
				b.WriteString(pad)
			}
			b.WriteString(l)
			if j < len(lines)-1 {
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

// Wrap breaks text into lines of at most width characters at spaces (a
// word longer than width gets a line of its own).
func Wrap(text string, width int) []string {
	var lines []string
	var line strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		w := utf8.RuneCountInString(word)
		if n > 0 && n+1+w > width {
			lines = append(lines, line.String())
			line.Reset()
			n = 0
		}
		if n > 0 {
			line.WriteByte(' ')
			n++
		}
		line.WriteString(word)
		n += w
	}
	if n > 0 {
		lines = append(lines, line.String())
	}
	return lines
}

// hanging wraps text at width with the first line starting at column first
// (already written by the caller) and the others indented by indent.
func hanging(text string, first, indent, width int) string {
	lines := Wrap(text, width-first)
	if len(lines) <= 1 {
		return strings.Join(lines, "")
	}
	rest := Wrap(strings.Join(lines[1:], " "), width-indent)
	pad := "\n" + strings.Repeat(" ", indent)
	return lines[0] + pad + strings.Join(rest, pad)
}
