package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	lproc "github.com/lvsd/lvsd/internal/proc"
)

// proc is a process the demo started inside a host. Its output goes to a
// log file; lineFn, when set, also sees every line of it as it comes.
type proc struct {
	*lproc.Proc
	name string
	log  string // path of the log file
}

func (h *host) start(name, logDir string, lineFn func(string), argv ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(logDir, name+".log")}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "---- %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := h.command(argv...)
	var out io.Writer = f
	var pw *io.PipeWriter
	if lineFn != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		out = io.MultiWriter(f, pw)
		go func() {
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				lineFn(sc.Text())
			}
			io.Copy(io.Discard, pr)
		}()
	}
	cmd.Stdout, cmd.Stderr = out, out
	p.Proc, err = lproc.Start(cmd, func() {
		if pw != nil {
			pw.Close()
		}
		f.Close()
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procs is every process the demo started, so cleanup can find them all.
type procs struct {
	mu  sync.Mutex
	all []*proc
}

func (ps *procs) add(p *proc) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.all = append(ps.all, p)
	return p
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(5 * time.Second)
		}()
	}
	wg.Wait()
}
