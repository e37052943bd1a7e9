// Go programs in known states for bench/verdicts.js and test/verdicts-*.test.ts.
//
//	verdicts-go idle-http   a net/http server on 127.0.0.1:0, idle: its OS threads park in
//	                        futex (whichever M the scheduler parks, the main thread included)
//	                        and one waits in epoll_wait (the netpoller)
//	verdicts-go busy N      the main goroutine blocks on a channel (its M parks) while N
//	                        goroutines compute
//	verdicts-go deadlock    two goroutines each hold one sync.Mutex and wait for the other;
//	                        a ticker goroutine stays alive (so the runtime sees no deadlock);
//	                        main waits for both
//
// Each mode prints one line, "ready pid=N key=value…", once it is in place.
package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

func ready(extra string) {
	fmt.Printf("ready pid=%d%s\n", os.Getpid(), extra)
	os.Stdout.Sync()
}

func idleHTTP() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "verdicts-go:", err)
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	ready(fmt.Sprintf(" port=%d", listener.Addr().(*net.TCPAddr).Port))
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, "verdicts-go:", err)
		os.Exit(2)
	}
}

var sink [32]byte

func busy(workers int) {
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func(seed byte) {
			block := make([]byte, 4096)
			block[0] = seed
			for {
				sum := sha256.Sum256(block)
				copy(block, sum[:])
				sink = sum
			}
		}(byte(i))
	}
	ready(fmt.Sprintf(" workers=%d", workers))
	<-done
}

func deadlock() {
	var a, b sync.Mutex
	var holding, both sync.WaitGroup
	holding.Add(2)
	both.Add(2)
	take := func(first, second *sync.Mutex) {
		defer both.Done()
		first.Lock()
		holding.Done()
		holding.Wait()
		second.Lock() // never returns
		second.Unlock()
		first.Unlock()
	}
	go take(&a, &b)
	go take(&b, &a)
	ticks := 0
	go func() {
		for range time.NewTicker(100 * time.Millisecond).C {
			ticks++
		}
	}()
	holding.Wait()
	ready("")
	both.Wait()
}

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "idle-http":
		idleHTTP()
	case "busy":
		workers := 2
		if len(os.Args) > 2 {
			if n, err := strconv.Atoi(os.Args[2]); err == nil && n > 0 {
				workers = n
			}
		}
		busy(workers)
	case "deadlock":
		deadlock()
	default:
		fmt.Fprintln(os.Stderr, "usage: verdicts-go idle-http | busy [N] | deadlock")
		os.Exit(2)
	}
}
