// Package manpage renders imgbake's man pages from the definitions the
// program runs on, so they cannot drift from it: imgbake(1) from the
// urfave/cli command tree, imgbake-recipe(5) from the step registry and the
// recipe language. Both are written as Markdown and converted to roff by
// go-md2man, the converter urfave/cli's own ToMan uses.
package manpage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cpuguy83/go-md2man/v2/md2man"

	"github.com/imgbake/imgbake/internal/clihelp"
)

// Header is what the title line of a page says besides its name.
type Header struct {
	Date   time.Time // of the source, for reproducible pages
	Source string    // e.g. "imgbake 0.1.0"
}

// NewHeader dates the pages by sourceDateEpoch (seconds, as
// $SOURCE_DATE_EPOCH) when it is set, else by now, so a rebuild of the same
// source makes the same pages.
func NewHeader(source, sourceDateEpoch string, now time.Time) (Header, error) {
	h := Header{Date: now, Source: source}
	if sourceDateEpoch != "" {
		sec, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil {
			return h, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", sourceDateEpoch)
		}
		h.Date = time.Unix(sec, 0)
	}
	return h, nil
}

// Section is an extra section of a page: a title, an introduction and a
// list of terms with their meaning (exit codes, environment variables).
type Section struct {
	Title string
	Text  string
	Items []Item
}

// Item is one term of a Section.
type Item struct{ Term, Text string }

// page collects a page's Markdown.
type page struct{ b strings.Builder }

func newPage(name string, section int, manual string, h Header) *page {
	p := &page{}
	title := fmt.Sprintf("%s %d %q %q %q", name, section, h.Date.UTC().Format("2006-01-02"), h.Source, manual)
	p.printf("%s\n%s\n\n", title, strings.Repeat("=", len(title)))
	return p
}

func (p *page) printf(format string, args ...any) { fmt.Fprintf(&p.b, format, args...) }

// heading starts a section (level 1, .SH) or a subsection (level 3, .SS:
// go-md2man makes level 2 a section too).
func (p *page) heading(level int, title string) {
	p.printf("%s %s\n\n", strings.Repeat("#", level), title)
}

// text writes a description: prose as paragraphs (escaped, `code` kept),
// verbatim lines as code blocks.
func (p *page) text(s string) {
	for _, blk := range clihelp.Blocks(s) {
		if blk.Verbatim {
			p.printf("```\n%s\n```\n\n", strings.Join(blk.Lines, "\n"))
		} else {
			p.printf("%s\n\n", escape(strings.Join(blk.Lines, " ")))
		}
	}
}

// term writes one entry of a definition list; term is Markdown already.
func (p *page) term(term, text string) {
	p.printf("%s\n:   %s\n\n", term, escape(text))
}

func (p *page) section(s Section) {
	p.heading(1, strings.ToUpper(s.Title))
	if s.Text != "" {
		p.text(s.Text)
	}
	for _, it := range s.Items {
		p.term("**"+escape(it.Term)+"**", it.Text)
	}
}

// roff converts the page to a man page.
func (p *page) roff() []byte { return md2man.Render([]byte(p.b.String())) }

var (
	markdownSpecial = strings.NewReplacer(`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`,
		`<`, `\<`, `>`, `\>`, `|`, `\|`, `#`, `\#`)
	// A paragraph that starts like a list item is not one.
	bulletStart  = regexp.MustCompile(`^[-+](\s|$)`)
	orderedStart = regexp.MustCompile(`^\d+\.(\s|$)`)
)

// escape makes text literal Markdown, except for `code` spans, which stay
// code (shown in bold).
func escape(text string) string {
	parts := strings.Split(text, "`")
	if n := len(parts); n%2 == 0 { // an unmatched backquote is literal
		parts[n-2] += "`" + parts[n-1]
		parts = parts[:n-1]
	}
	for i := 0; i < len(parts); i += 2 {
		parts[i] = markdownSpecial.Replace(parts[i])
	}
	out := strings.Join(parts, "`")
	switch {
	case bulletStart.MatchString(out):
		out = `\` + out
	case orderedStart.MatchString(out):
		i := strings.IndexByte(out, '.')
		out = out[:i] + `\` + out[i:]
	}
	return out
}
