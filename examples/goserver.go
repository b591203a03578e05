// A Go net/rpc server on the go-amqprpc wire protocol, serving Arith (Mul, Div, Echo, Sleep,
// GetUserID) on a queue that Python servers may share. Build and run (GOPATH mode):
//
//	GOPATH=/usr/share/gocode:$PWD/examples/go GO111MODULE=off go run examples/goserver.go -format json
package main

import (
	"errors"
	"flag"
	"log"
	"net/rpc"
	"time"

	"github.com/streadway/amqp"

	"goamqprpc"
)

// Args is the argument of Mul and Div.
type Args struct{ A, B int }

// Quotient is the result of Div.
type Quotient struct{ Quo, Rem int }

// Arith is the example service.
type Arith int

// Mul returns A*B.
func (t *Arith) Mul(args *Args, reply *int) error { *reply = args.A * args.B; return nil }

// Div returns the quotient and remainder of A/B.
func (t *Arith) Div(args *Args, quo *Quotient) error {
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	*quo = Quotient{args.A / args.B, args.A % args.B}
	return nil
}

// Echo returns its argument.
func (t *Arith) Echo(args map[string]interface{}, reply *map[string]interface{}) error {
	*reply = args
	return nil
}

// Sleep waits Ms milliseconds and returns true.
func (t *Arith) Sleep(args *struct{ Ms int }, reply *bool) error {
	time.Sleep(time.Duration(args.Ms) * time.Millisecond)
	*reply = true
	return nil
}

// GetUserID returns {"id": id}.
func (t *Arith) GetUserID(id int, reply *map[string]interface{}) error {
	*reply = map[string]interface{}{"id": id}
	return nil
}

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	queue := flag.String("queue", "testrpc", "request queue")
	format := flag.String("format", "json", "json or msgpack")
	flag.Parse()

	conn, err := amqp.Dial(*url)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	server := rpc.NewServer()
	if err := server.Register(new(Arith)); err != nil {
		log.Fatal(err)
	}
	codec, err := goamqprpc.NewServerCodec(conn, *queue, goamqprpc.Formats[*format])
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving Arith on %q (%s)", *queue, *format)
	server.ServeCodec(codec)
}
