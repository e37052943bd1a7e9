// An idle net/http server: the threads of the Go scheduler park in futex (notesleep,
// through the frameless runtime.futex) and one waits in the netpoller
// (runtime.netpoll, through the frameless runtime.epollwait). Prints
// "ready pid=N port=P" once it listens.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("ready pid=%d port=%d\n", os.Getpid(), listener.Addr().(*net.TCPAddr).Port)
	http.Serve(listener, nil)
}
