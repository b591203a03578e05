// A Go net/rpc client on the go-amqprpc wire protocol, calling Arith on any server, Go or
// Python (a server must be running: Go clients check at start-up). Build and run:
//
//	GOPATH=/usr/share/gocode:$PWD/examples/go GO111MODULE=off go run examples/goclient.go -format json
package main

import (
	"flag"
	"fmt"
	"log"
	"net/rpc"

	"github.com/streadway/amqp"

	"goamqprpc"
)

// Args is the argument of Mul and Div.
type Args struct{ A, B int }

// Quotient is the result of Div.
type Quotient struct{ Quo, Rem int }

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
	codec, err := goamqprpc.NewClientCodec(conn, *queue, goamqprpc.Formats[*format])
	if err != nil {
		log.Fatal(err)
	}
	client := rpc.NewClientWithCodec(codec)
	defer client.Close()

	var product int
	if err := client.Call("Arith.Mul", &Args{6, 7}, &product); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Arith.Mul 6*7 = %d\n", product)
	var quo Quotient
	if err := client.Call("Arith.Div", &Args{17, 5}, &quo); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Arith.Div 17/5 = %+v\n", quo)
	err = client.Call("Arith.Div", &Args{1, 0}, &quo)
	fmt.Printf("Arith.Div 1/0 -> error: %v\n", err)
	if product != 42 || quo != (Quotient{3, 2}) || err == nil || err.Error() != "divide by zero" {
		log.Fatal("unexpected answers")
	}
}
