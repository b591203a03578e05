// A Go client for amqprpc's benchmarks: net/rpc over the go-amqprpc codec that the interop
// peer uses (examples/go/src/goamqprpc), calling Arith.Mul with C calls in flight.
//
//	benchclient -queue Q [-format json|msgpack] [-n 10000] [-c 100] [-warmup 1000]
//
// It runs the warm-up, prints "warm", waits for a line on stdin, runs N calls with C in
// flight (C goroutines, N/C calls each, one at a time), checks every result, and prints one
// JSON line: calls, seconds, p50_us, p99_us, failures; it exits when stdin closes, after the
// harness has read its CPU time from /proc. Build (GOPATH mode, Debian's packages), from benchmarks/go:
//
//	GOPATH=/usr/share/gocode:<repo>/examples/go GO111MODULE=off go build -o benchclient ./benchclient
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/rpc"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streadway/amqp"

	"goamqprpc"
)

// Args is Arith.Mul's argument, as the interop peer declares it.
type Args struct{ A, B int }

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	queue := flag.String("queue", "testrpc", "request queue")
	formatName := flag.String("format", "json", "json or msgpack")
	n := flag.Int("n", 10000, "measured calls")
	c := flag.Int("c", 100, "calls in flight")
	warmup := flag.Int("warmup", 1000, "warm-up calls")
	flag.Parse()

	format, ok := goamqprpc.Formats[*formatName]
	if !ok {
		fail("unknown format %q", *formatName)
	}
	conn, err := amqp.Dial(*url)
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	codec, err := goamqprpc.NewClientCodec(conn, *queue, format)
	if err != nil {
		fail("client codec: %v", err)
	}
	client := rpc.NewClientWithCodec(codec)
	defer client.Close()

	var failures int64
	burst := func(total int, latencies []float64) float64 {
		per := total / *c
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < *c; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < per; i++ {
					var got int
					began := time.Now()
					err := client.Call("Arith.Mul", &Args{i, 2}, &got)
					if latencies != nil {
						latencies[w*per+i] = float64(time.Since(began).Nanoseconds()) / 1e3
					}
					if err != nil || got != 2*i {
						atomic.AddInt64(&failures, 1)
					}
				}
			}(w)
		}
		wg.Wait()
		return time.Since(start).Seconds()
	}

	if *warmup > 0 {
		burst(*warmup, nil)
	}
	fmt.Println("warm")
	stdin := bufio.NewReader(os.Stdin)
	if _, err := stdin.ReadString('\n'); err != nil {
		fail("waiting for go: %v", err)
	}
	total := (*n / *c) * *c
	latencies := make([]float64, total)
	seconds := burst(total, latencies)
	sort.Float64s(latencies)
	report, _ := json.Marshal(map[string]interface{}{
		"calls": total, "seconds": seconds,
		"p50_us": latencies[len(latencies)/2], "p99_us": latencies[len(latencies)*99/100],
		"failures": failures,
	})
	fmt.Println(string(report))
	// Stay until the harness has read this process's CPU time and closed stdin.
	_, _ = stdin.ReadString('\n')
	if failures > 0 {
		os.Exit(1)
	}
}

func fail(msg string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, msg+"\n", args...)
	os.Exit(2)
}
