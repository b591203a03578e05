// Package goamqprpc is the go-amqprpc wire protocol as a net/rpc ClientCodec and ServerCodec:
// requests go to the default exchange with reply_to = "Service.Method", correlation_id = the
// client's reply queue and message_id = the call number; replies copy the three and carry
// headers {"error": string} on failure. Both sides consume in no-ack mode, as go-amqprpc does.
// It is what amqprpc's Go examples and interop tests are built on.
package goamqprpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"strconv"
	"sync"

	"github.com/streadway/amqp"
	msgpack "gopkg.in/vmihailenco/msgpack.v2"
)

// Format encodes and decodes message bodies.
type Format struct {
	Name      string
	Marshal   func(interface{}) ([]byte, error)
	Unmarshal func([]byte, interface{}) error
}

// Formats are the two body formats, by name.
var Formats = map[string]Format{
	"json":    {"json", json.Marshal, json.Unmarshal},
	"msgpack": {"msgpack", msgpack.Marshal, msgpack.Unmarshal},
}

// Options choose how the codecs declare their queues.
type Options struct {
	// Durable declares the request queue durable and the client's reply queue exclusive.
	// RabbitMQ 4.3 denies, by default, queues that are neither durable nor exclusive, which
	// is how go-amqprpc declares both. Every peer of a request queue must declare it alike
	// (amqprpc: declare="durable").
	Durable bool
}

func declareRequestQueue(ch *amqp.Channel, queue string, options Options) (amqp.Queue, error) {
	// Exactly these flags: durable only if asked, not auto-delete, not exclusive, no arguments.
	return ch.QueueDeclare(queue, options.Durable, false, false, false, nil)
}

// ---- server -------------------------------------------------------------------------

type serverCodec struct {
	ch         *amqp.Channel
	format     Format
	deliveries <-chan amqp.Delivery
	current    amqp.Delivery
	mu         sync.Mutex
	seq        uint64
	pending    map[uint64]amqp.Delivery
}

// NewServerCodec serves requests from queue (declared as every peer declares it).
func NewServerCodec(conn *amqp.Connection, queue string, format Format) (rpc.ServerCodec, error) {
	return NewServerCodecWith(conn, queue, format, Options{})
}

// NewServerCodecWith is NewServerCodec with queues declared as options say.
func NewServerCodecWith(conn *amqp.Connection, queue string, format Format, options Options) (rpc.ServerCodec, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if _, err := declareRequestQueue(ch, queue, options); err != nil {
		return nil, err
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	return &serverCodec{ch: ch, format: format, deliveries: deliveries,
		pending: map[uint64]amqp.Delivery{}}, nil
}

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	d, ok := <-c.deliveries
	if !ok {
		return errors.New("deliveries closed")
	}
	if d.CorrelationId == "" {
		// As go-amqprpc: a request that cannot be answered ends the serving loop.
		return errors.New("no correlation_id")
	}
	c.mu.Lock()
	c.seq++
	r.Seq = c.seq
	c.pending[r.Seq] = d
	c.mu.Unlock()
	r.ServiceMethod = d.ReplyTo
	c.current = d
	return nil
}

func (c *serverCodec) ReadRequestBody(body interface{}) error {
	if body == nil {
		return nil
	}
	return c.format.Unmarshal(c.current.Body, body)
}

func (c *serverCodec) WriteResponse(r *rpc.Response, body interface{}) error {
	c.mu.Lock()
	d := c.pending[r.Seq]
	delete(c.pending, r.Seq)
	c.mu.Unlock()
	msg := amqp.Publishing{ReplyTo: d.ReplyTo, CorrelationId: d.CorrelationId, MessageId: d.MessageId}
	if r.Error != "" {
		msg.Headers = amqp.Table{"error": r.Error}
		body = struct{}{}
	}
	encoded, err := c.format.Marshal(body)
	if err != nil {
		return err
	}
	msg.Body = encoded
	return c.ch.Publish("", d.CorrelationId, false, false, msg)
}

func (c *serverCodec) Close() error { return c.ch.Close() }

// ---- client -------------------------------------------------------------------------

type clientCodec struct {
	ch         *amqp.Channel
	format     Format
	queue      string
	replyQueue string
	deliveries <-chan amqp.Delivery
	current    amqp.Delivery
}

// NewClientCodec calls servers on queue; it fails when no server consumes it yet.
func NewClientCodec(conn *amqp.Connection, queue string, format Format) (rpc.ClientCodec, error) {
	return NewClientCodecWith(conn, queue, format, Options{})
}

// NewClientCodecWith is NewClientCodec with queues declared as options say.
func NewClientCodecWith(conn *amqp.Connection, queue string, format Format, options Options) (rpc.ClientCodec, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	q, err := declareRequestQueue(ch, queue, options)
	if err != nil {
		return nil, err
	}
	if q.Consumers == 0 {
		return nil, errors.New("no consumers in queue")
	}
	// go-amqprpc's reply queue is auto-delete, not exclusive; Durable makes it exclusive.
	reply, err := ch.QueueDeclare("", false, true, options.Durable, false, nil)
	if err != nil {
		return nil, err
	}
	deliveries, err := ch.Consume(reply.Name, "", true, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	return &clientCodec{ch: ch, format: format, queue: queue, replyQueue: reply.Name,
		deliveries: deliveries}, nil
}

func (c *clientCodec) WriteRequest(r *rpc.Request, body interface{}) error {
	encoded, err := c.format.Marshal(body)
	if err != nil {
		return err
	}
	return c.ch.Publish("", c.queue, false, false, amqp.Publishing{
		ReplyTo:       r.ServiceMethod,
		CorrelationId: c.replyQueue,
		MessageId:     strconv.FormatUint(r.Seq, 10),
		Body:          encoded,
	})
}

func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	d, ok := <-c.deliveries
	if !ok {
		return errors.New("deliveries closed")
	}
	c.current = d
	if value, present := d.Headers["error"]; present {
		text, isString := value.(string)
		if !isString {
			return errors.New("header not a string")
		}
		r.Error = text
	}
	seq, err := strconv.ParseUint(d.MessageId, 10, 64)
	if err != nil {
		return err
	}
	r.Seq = seq
	r.ServiceMethod = d.ReplyTo
	return nil
}

func (c *clientCodec) ReadResponseBody(body interface{}) error {
	if body == nil {
		return nil
	}
	if err := c.format.Unmarshal(c.current.Body, body); err != nil {
		return fmt.Errorf("reading body %v", err)
	}
	return nil
}

func (c *clientCodec) Close() error { return c.ch.Close() }
