package importer

import (
	"strings"
)

// splitCommand splits a keepalived script string ("/usr/bin/check arg 'two
// words'") into argv the way keepalived does before it execs it: on blanks,
// with single and double quotes grouping and a backslash escaping the next
// character. A command that needs a shell (redirections, pipes, variables,
// a relative program) is run as ["/bin/sh", "-c", cmd], because lvsd execs
// argv without one; shell reports that.
func splitCommand(cmd string) (argv []string, shell bool) {
	cmd = strings.TrimSpace(cmd)
	if strings.ContainsAny(cmd, "<>|&;$`*?()~") {
		return []string{"/bin/sh", "-c", cmd}, true
	}
	var cur strings.Builder
	var quote byte
	has := false
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, has = c, true
		case c == '\\' && i+1 < len(cmd):
			i++
			cur.WriteByte(cmd[i])
			has = true
		case c == ' ' || c == '\t':
			if has {
				argv = append(argv, cur.String())
			}
			cur.Reset()
			has = false
		default:
			cur.WriteByte(c)
			has = true
		}
	}
	if has {
		argv = append(argv, cur.String())
	}
	if len(argv) == 0 || !strings.HasPrefix(argv[0], "/") {
		// lvsd wants an absolute program; the shell searches PATH.
		return []string{"/bin/sh", "-c", cmd}, true
	}
	return argv, false
}

// shellQuote quotes a word for /bin/sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
