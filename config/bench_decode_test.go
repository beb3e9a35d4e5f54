package config

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// largeConfig is the table bench/apply builds: nSvc services of nReal real
// servers each, every key spelt out as a user would.
func largeConfig(nSvc, nReal int) []byte {
	var b bytes.Buffer
	b.WriteString("[director]\nexpire_nodest_conn = false\nexpire_quiescent_template = false\nip_forward = false\n\n")
	for i := range nSvc {
		fmt.Fprintf(&b, "[[service]]\nname = \"s%d\"\nvip = \"10.%d.%d.%d\"\nport = 80\nscheduler = \"wlc\"\nforwarding = \"nat\"\nalpha = false\n",
			i, 50+i/65536, (i/256)%256, i%256)
		for j := range nReal {
			fmt.Fprintf(&b, "[[service.realserver]]\naddress = \"10.1.%d.%d\"\nweight = 1\n", 1+j/250, 2+j%250)
		}
	}
	return b.Bytes()
}

// BenchmarkParse500x10 is the config half of `lvsd apply` at the scale
// bench/apply measures in the VM: TOML parse, line index, decode, defaults
// and validation of 500 services x 10 real servers. Besides wall time it
// reports the CPU time of the whole process per op (GC included), which a
// machine shared with other work disturbs less.
func BenchmarkParse500x10(b *testing.B) {
	data := largeConfig(500, 10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := Parse("bench.toml", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
