// Package manpage makes lvsd's man pages from the README, so the config
// reference and the command list have one source and cannot drift:
// lvsd.toml(5) is the README's "Config reference" section and lvsd(8) its
// "Commands", "Monitoring" and "Migrating from keepalived or ldirectord" sections.
package manpage

import (
	"fmt"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
)

// Page is one man page and the README sections it is made of.
type Page struct {
	Name, Section, Title string
	Synopsis             string
	Sections             []string // "## " headings of the README
}

// Pages are the man pages the Debian package installs.
var Pages = []Page{
	{Name: "lvsd.toml", Section: "5", Title: "lvsd configuration file",
		Synopsis: "/etc/lvsd/lvsd.toml", Sections: []string{"Config reference"}},
	{Name: "lvsd", Section: "8", Title: "Linux Virtual Server director",
		Synopsis: "lvsd COMMAND [flags]", Sections: []string{"Commands", "Monitoring", "Migrating from keepalived or ldirectord"}},
}

// Section returns the body of the README section headed "## heading",
// up to the next "## " heading.
func Section(readme, heading string) (string, error) {
	lines := strings.Split(readme, "\n")
	start := -1
	for i, l := range lines {
		if l == "## "+heading {
			start = i + 1
			continue
		}
		if start >= 0 && strings.HasPrefix(l, "## ") {
			return strings.Join(lines[start:i], "\n"), nil
		}
	}
	if start < 0 {
		return "", fmt.Errorf("README has no section %q", heading)
	}
	return strings.Join(lines[start:], "\n"), nil
}

// Markdown is the page as markdown, with the README's "## " sections as
// man sections and their "### " and "#### " subsections as subsections.
func (p Page) Markdown(readme string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s %s \"\" \"lvsd\" \"lvsd manual\"\n\n# NAME\n\n%s - %s\n\n# SYNOPSIS\n\n`%s`\n\n",
		strings.ToUpper(p.Name), p.Section, p.Name, p.Title, p.Synopsis)
	for _, h := range p.Sections {
		body, err := Section(readme, h)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "# %s\n", strings.ToUpper(h))
		for _, l := range strings.Split(body, "\n") {
			switch {
			case strings.HasPrefix(l, "#### "):
				l = "## " + strings.TrimPrefix(l, "#### ")
			case strings.HasPrefix(l, "### "):
				l = "## " + strings.TrimPrefix(l, "### ")
			}
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("# SEE ALSO\n\nlvsd(8), lvsd.toml(5), ipvsadm(8), keepalived(8)\n")
	return b.String(), nil
}

// Roff renders the page for man(1).
func (p Page) Roff(readme string) ([]byte, error) {
	md, err := p.Markdown(readme)
	if err != nil {
		return nil, err
	}
	return wrapTables(md2man.Render([]byte(md))), nil
}

// wrapTables lets the last column of each table wrap (a tbl text block in
// an expanding column), so the README's wide tables fit a terminal.
func wrapTables(roff []byte) []byte {
	lines := strings.Split(string(roff), "\n")
	in, format := false, false
	for i, l := range lines {
		switch {
		case l == ".TS":
			in, format = true, true
		case l == ".TE":
			in = false
		case in && format && strings.HasSuffix(strings.TrimSpace(l), ";"):
		case in && format:
			f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), "."))
			if len(f) > 0 {
				f[len(f)-1] += "xw(40)"
			}
			end := ""
			if strings.HasSuffix(strings.TrimSpace(l), ".") {
				end, format = " .", false
			}
			lines[i] = strings.Join(f, " ") + end
		case in && strings.Contains(l, "\t") && !strings.HasSuffix(l, "\tT{"): // md2man wraps long cells itself
			j := strings.LastIndex(l, "\t")
			lines[i] = l[:j+1] + "T{\n" + l[j+1:] + "\nT}"
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
