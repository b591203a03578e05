// A Go peer for amqprpc's interop tests, on net/rpc with the go-amqprpc wire protocol.
//
//	peer -mode server -queue Q -format json|msgpack [-service Arith]
//	peer -mode client -queue Q -format json|msgpack [-service Arith] [-n 1000] [-c 100]
//
// The server prints "ready" once it consumes. The client runs the interop checks, then N
// calls with C in flight, verifying every result; it prints one JSON line with its figures
// and exits non-zero on any mismatch.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/rpc"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/streadway/amqp"

	"goamqprpc"
)

// Args is the argument of Mul and Div.
type Args struct{ A, B int }

// Quotient is the result of Div.
type Quotient struct{ Quo, Rem int }

// SleepArgs is the argument of Sleep.
type SleepArgs struct{ Ms int }

// Arith is the service the examples and tests use.
type Arith int

// Mul returns A*B.
func (t *Arith) Mul(args *Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

// Div returns the quotient and remainder of A/B.
func (t *Arith) Div(args *Args, quo *Quotient) error {
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	quo.Quo = args.A / args.B
	quo.Rem = args.A % args.B
	return nil
}

// Echo returns its argument.
func (t *Arith) Echo(args map[string]interface{}, reply *map[string]interface{}) error {
	*reply = args
	return nil
}

// Sleep waits Ms milliseconds and returns true.
func (t *Arith) Sleep(args *SleepArgs, reply *bool) error {
	time.Sleep(time.Duration(args.Ms) * time.Millisecond)
	*reply = true
	return nil
}

// GetUserID shows a Go initialism: Python reaches it as GetUserID, not GetUserId.
func (t *Arith) GetUserID(id int, reply *map[string]interface{}) error {
	*reply = map[string]interface{}{"id": id}
	return nil
}

func main() {
	mode := flag.String("mode", "server", "server or client")
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	queue := flag.String("queue", "testrpc", "request queue")
	formatName := flag.String("format", "json", "json or msgpack")
	service := flag.String("service", "Arith", "service name")
	n := flag.Int("n", 1000, "calls in the load phase")
	c := flag.Int("c", 100, "calls in flight in the load phase")
	declare := flag.String("declare", "go", "go (go-amqprpc's queues) or durable")
	flag.Parse()

	format, ok := goamqprpc.Formats[*formatName]
	if !ok {
		fail("unknown format %q", *formatName)
	}
	if *declare != "go" && *declare != "durable" {
		fail("unknown declare %q", *declare)
	}
	options := goamqprpc.Options{Durable: *declare == "durable"}
	conn, err := amqp.Dial(*url)
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	if *mode == "server" {
		serve(conn, *queue, format, *service, options)
		return
	}
	os.Exit(runClient(conn, *queue, format, *service, *n, *c, options))
}

func fail(msg string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, msg+"\n", args...)
	os.Exit(2)
}

func serve(conn *amqp.Connection, queue string, format goamqprpc.Format, service string, options goamqprpc.Options) {
	server := rpc.NewServer()
	if err := server.RegisterName(service, new(Arith)); err != nil {
		fail("register: %v", err)
	}
	codec, err := goamqprpc.NewServerCodecWith(conn, queue, format, options)
	if err != nil {
		fail("server codec: %v", err)
	}
	fmt.Println("ready")
	server.ServeCodec(codec)
}

type checker struct {
	failures []string
}

func (k *checker) expect(what string, ok bool, got interface{}) {
	if !ok {
		k.failures = append(k.failures, fmt.Sprintf("%s: got %#v", what, got))
	}
}

func runClient(conn *amqp.Connection, queue string, format goamqprpc.Format, service string, n, c int, options goamqprpc.Options) int {
	codec, err := goamqprpc.NewClientCodecWith(conn, queue, format, options)
	if err != nil {
		fail("client codec: %v", err)
	}
	client := rpc.NewClientWithCodec(codec)
	defer client.Close()
	k := &checker{}
	name := func(method string) string { return service + "." + method }

	var product int
	err = client.Call(name("Mul"), &Args{6, 7}, &product)
	k.expect("Mul 6*7", err == nil && product == 42, []interface{}{product, err})

	var quo Quotient
	err = client.Call(name("Div"), &Args{7, 2}, &quo)
	k.expect("Div 7/2", err == nil && quo == Quotient{3, 1}, []interface{}{quo, err})

	err = client.Call(name("Div"), &Args{1, 0}, &quo)
	k.expect("Div by zero", err != nil && err.Error() == "divide by zero", err)

	err = client.Call(name("Nope"), &Args{1, 1}, &product)
	want := "rpc: can't find method " + name("Nope")
	k.expect("unknown method", err != nil && err.Error() == want, err)

	var user map[string]interface{}
	err = client.Call(name("GetUserID"), 5, &user)
	k.expect("GetUserID", err == nil && fmt.Sprint(user["id"]) == "5", []interface{}{user, err})

	nested := map[string]interface{}{
		"s": "héllo", "i": 1 << 40, "f": 1.5, "b": true, "n": nil,
		"l": []interface{}{1, "x"}, "m": map[string]interface{}{"k": "v"},
	}
	var echoed map[string]interface{}
	err = client.Call(name("Echo"), nested, &echoed)
	k.expect("Echo nested", err == nil && sameJSON(nested, echoed), []interface{}{echoed, err})

	err = client.Call(name("Mul"), "not a struct", &product)
	k.expect("wrong argument type gives an error reply", err != nil && err != rpc.ErrShutdown, err)
	err = client.Call(name("Mul"), &Args{2, 3}, &product)
	k.expect("serving after a bad argument", err == nil && product == 6, []interface{}{product, err})

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, c)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var got int
			err := client.Call(name("Mul"), &Args{i, 3}, &got)
			if err != nil || got != 3*i {
				mu.Lock()
				k.failures = append(k.failures, fmt.Sprintf("Mul %d*3: got %d, %v", i, got, err))
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	report, _ := json.Marshal(map[string]interface{}{
		"calls": n, "inflight": c, "seconds": elapsed, "calls_per_s": float64(n) / elapsed,
		"failures": k.failures,
	})
	fmt.Println(string(report))
	if len(k.failures) > 0 {
		return 1
	}
	return 0
}

// sameJSON compares two values as JSON texts: both formats bring numbers back in their own
// types (float64 from JSON, sized ints from msgpack), which JSON normalises.
func sameJSON(a, b interface{}) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	var va, vb interface{}
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}
