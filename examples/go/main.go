// A Go program on libaiplat through cgo, calling the C API directly: no
// wrapper package, only what cgo needs.
//
// Shows: `#cgo pkg-config: aiplat`; Go functions exported with //export and
// given to the library as C callbacks (the log callback and a bus
// subscription, both called on library threads); a runtime/cgo.Handle
// passed as user_data so a callback finds its Go state without handing Go
// pointers to C; C strings and buffers freed by their owner (C.free for
// ours, aiplat_free for the library's).
//
//	NATS_URL=nats://127.0.0.1:4222 go run . demo.echo "hello"
//
// It answers requests on go.reverse itself, asks itself once, then sends a
// ChatRequest to SUBJECT (examples/echo_service) and prints the answer.
// Exit codes: 0 answered, 1 error reply, 2 failure.
package main

/*
#cgo pkg-config: aiplat
#include <stdint.h>
#include <stdlib.h>
#include <aiplat/aiplat.h>

// The exported Go functions below, as cgo writes them in _cgo_export.h.
extern void goLogRecord(aiplat_log_level level, char *record, size_t len, void *user_data);
extern void goOnMessage(aiplat_bus_msg *msg, void *user_data);
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync/atomic"
	"unsafe"
)

var logRecords atomic.Int64
var connectedLogged atomic.Bool

//export goLogRecord
func goLogRecord(level C.aiplat_log_level, record *C.char, n C.size_t, userData unsafe.Pointer) {
	// The record is borrowed for the call: copy what we keep.
	text := C.GoStringN(record, C.int(n))
	logRecords.Add(1)
	if strings.Contains(text, `"msg":"nats connected"`) {
		connectedLogged.Store(true)
	}
}

// reverser is the Go state of the go.reverse subscription.
type reverser struct {
	prefix string
	served atomic.Int64
}

//export goOnMessage
func goOnMessage(msg *C.aiplat_bus_msg, userData unsafe.Pointer) {
	r := cgo.Handle(*(*C.uintptr_t)(userData)).Value().(*reverser)
	data := C.GoBytes(C.aiplat_bus_msg_data(msg), C.int(C.aiplat_bus_msg_len(msg)))
	for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
		data[i], data[j] = data[j], data[i]
	}
	out := append([]byte(r.prefix), data...)
	r.served.Add(1) // before the reply: the requester may look as soon as it has it
	// Go memory without Go pointers may be passed for the call's duration.
	if st := C.aiplat_bus_msg_respond(msg, unsafe.Pointer(&out[0]), C.size_t(len(out)), nil); st != C.AIPLAT_OK {
		fmt.Fprintln(os.Stderr, "go-example: respond:", lastError(st))
	}
}

func lastError(st C.aiplat_status) string {
	var buf [512]C.char
	C.aiplat_error_last(&buf[0], C.size_t(len(buf)))
	return fmt.Sprintf("%s: %s", C.GoString(C.aiplat_status_str(st)), C.GoString(&buf[0]))
}

func check(st C.aiplat_status, what string) {
	if st != C.AIPLAT_OK {
		panic(fmt.Errorf("%s: %s", what, lastError(st)))
	}
}

func request(bus *C.aiplat_bus, subject string, payload []byte) []byte {
	csub := C.CString(subject)
	defer C.free(unsafe.Pointer(csub))
	var p unsafe.Pointer
	if len(payload) > 0 {
		p = unsafe.Pointer(&payload[0])
	}
	var reply *C.aiplat_bus_msg
	check(C.aiplat_bus_request(bus, csub, p, C.size_t(len(payload)), nil, 5000, &reply), "request "+subject)
	defer C.aiplat_bus_msg_destroy(reply)
	return C.GoBytes(C.aiplat_bus_msg_data(reply), C.int(C.aiplat_bus_msg_len(reply)))
}

func setString(m *C.aiplat_msg, field, value string) {
	cf, cv := C.CString(field), C.CString(value)
	defer C.free(unsafe.Pointer(cf))
	defer C.free(unsafe.Pointer(cv))
	check(C.aiplat_msg_set_string(m, cf, cv), field)
}

func getString(m *C.aiplat_msg, field string) string {
	cf := C.CString(field)
	defer C.free(unsafe.Pointer(cf))
	var s *C.char
	check(C.aiplat_msg_get_string(m, cf, &s), field)
	return C.GoString(s) // a copy: s is borrowed from m
}

func run(subject, text string) int {
	// aiplat_error_last() is per OS thread: keep this goroutine on one, so
	// that the detail read after a failed call is that call's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.aiplat_log_set_level(C.AIPLAT_LOG_INFO)
	C.aiplat_log_set_callback(C.aiplat_log_fn(C.goLogRecord), nil)
	defer C.aiplat_log_set_callback(nil, nil) // before Go state goes away

	var cfg *C.aiplat_config
	check(C.aiplat_config_create(&cfg), "config")
	defer C.aiplat_config_destroy(cfg)
	var bus *C.aiplat_bus
	check(C.aiplat_bus_create(&bus, cfg), "bus")
	defer C.aiplat_bus_destroy(bus)
	check(C.aiplat_bus_connect(bus), "connect")

	// user_data: a cgo.Handle stored in C memory, so C never holds a Go pointer.
	state := &reverser{prefix: "reversed:"}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	slot := (*C.uintptr_t)(C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0)))))
	defer C.free(unsafe.Pointer(slot))
	*slot = C.uintptr_t(handle)

	csub := C.CString("go.reverse")
	defer C.free(unsafe.Pointer(csub))
	var sub *C.aiplat_bus_sub
	check(C.aiplat_bus_subscribe(bus, csub, nil, C.aiplat_bus_msg_fn(C.goOnMessage), unsafe.Pointer(slot), &sub), "subscribe")
	defer C.aiplat_bus_sub_destroy(sub) // runs before the slot and handle are freed

	fmt.Println(string(request(bus, "go.reverse", []byte("olleh"))))

	var req *C.aiplat_msg
	check(C.aiplat_msg_create(&req, C.AIPLAT_MSG_CHAT_REQUEST), "message")
	defer C.aiplat_msg_destroy(req)
	setString(req, "user_id", "go")
	setString(req, "message", text)
	var wire *C.uint8_t
	var n C.size_t
	check(C.aiplat_msg_encode(req, &wire, &n), "encode")
	payload := C.GoBytes(unsafe.Pointer(wire), C.int(n))
	C.aiplat_free(unsafe.Pointer(wire)) // the library's buffer: aiplat_free, not C.free

	answer := request(bus, subject, payload)
	var rep *C.aiplat_msg
	var ap *C.uint8_t
	if len(answer) > 0 {
		ap = (*C.uint8_t)(unsafe.Pointer(&answer[0]))
	}
	check(C.aiplat_msg_decode(&rep, C.AIPLAT_MSG_CHAT_RESPONSE, ap, C.size_t(len(answer))), "decode")
	defer C.aiplat_msg_destroy(rep)

	fmt.Fprintf(os.Stderr, "go-example: served %d, %d log record(s), connected logged: %v\n",
		state.served.Load(), logRecords.Load(), connectedLogged.Load())
	cerr := C.CString("error")
	defer C.free(unsafe.Pointer(cerr))
	if C.aiplat_msg_has(rep, cerr) {
		var e *C.aiplat_msg
		check(C.aiplat_msg_get_message(rep, cerr, &e), "error")
		fmt.Fprintf(os.Stderr, "error reply: %s\n", getString(e, "message"))
		return 1
	}
	fmt.Println(getString(rep, "text"))
	return 0
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go-example SUBJECT TEXT")
		os.Exit(2)
	}
	code := 2
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintln(os.Stderr, "go-example:", r)
			}
		}()
		code = run(os.Args[1], os.Args[2])
	}()
	os.Exit(code)
}
