package scaleout_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readConcurrency is how many REST calls are in flight at once in the read-path benchmarks,
// whatever the number of processes.
const readConcurrency = 32

// The read path, GET /v1/consents/{id} with a client token through the gateways (the gateway
// verifies the token, calls consent over gRPC, consent reads Postgres), with one process of
// every service and with two: make bench prints the ratio. The cores metric is the CPU time of
// every puente process and of this load generator over the wall time: how much of the machine
// the run kept busy.
func BenchmarkReadPathOnePerService(b *testing.B) { benchReadPath(b, 1) }
func BenchmarkReadPathTwoPerService(b *testing.B) { benchReadPath(b, 2) }

func benchReadPath(b *testing.B, replicas int) {
	ctx := context.Background()
	c := startCluster(b, replicas)
	a, institution, err := setupTenant(ctx, c.lb, c.admin)
	if err != nil {
		b.Fatal(err)
	}
	var started atomic.Int32
	f, err := a.link(ctx, "bench", institution, &started)
	if err != nil {
		b.Fatal(err)
	}
	path := "/v1/consents/" + f.consent

	var pids []int
	for _, ps := range c.procs {
		for _, p := range ps {
			pids = append(pids, p.pid())
		}
	}
	pids = append(pids, os.Getpid())

	tickets := make(chan struct{})
	var failed atomic.Value
	var wg sync.WaitGroup
	for range readConcurrency {
		wg.Go(func() {
			for range tickets {
				if err := a.call(ctx, http.MethodGet, path, nil, nil); err != nil {
					failed.CompareAndSwap(nil, err)
				}
			}
		})
	}
	cpu0, wall0 := cpuSeconds(b, pids), time.Now()
	for b.Loop() {
		tickets <- struct{}{}
	}
	close(tickets)
	wg.Wait()
	cpu, wall := cpuSeconds(b, pids)-cpu0, time.Since(wall0)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cpu/wall.Seconds(), "cores")
}

// cpuSeconds sums user and system CPU time of pids from /proc/<pid>/stat.
func cpuSeconds(b *testing.B, pids []int) float64 {
	b.Helper()
	const ticksPerSecond = 100 // USER_HZ on Linux
	var ticks int64
	for _, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command name (which may hold spaces) in parentheses: utime and stime
		// are the 14th and 15th fields of the line, the 12th and 13th after ")".
		rest := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		for _, f := range rest[11:13] {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			ticks += n
		}
	}
	return float64(ticks) / ticksPerSecond
}
