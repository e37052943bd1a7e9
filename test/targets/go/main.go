// Go programs in known states for test/goroutines.test.ts and bench/goroutines.js.
//
//	goroutines deadlock      two goroutines each hold one sync.Mutex and wait for the other;
//	                         a ticker goroutine stays alive (so the runtime sees no deadlock);
//	                         main waits for both on a WaitGroup
//	goroutines idle-http     a net/http server on 127.0.0.1:0, idle (its accept loop in
//	                         the netpoller: "IO wait"); the port is in the ready line
//	goroutines many N        N goroutines blocked receiving on one channel
//
// Each mode prints one line, "ready pid=N key=value…", once it is in place. On SIGUSR1
// it writes its own goroutine dump (pprof debug=2, the runtime.Stack format; with
// GOTRACEBACK=system it lists every goroutine and frame) to the file named by
// GOROUTINE_DUMP, then "dumped" on stdout: the ground truth the tests compare with.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func ready(extra string) {
	fmt.Printf("ready pid=%d%s\n", os.Getpid(), extra)
	os.Stdout.Sync()
}

func dumpOnSignal() {
	path := os.Getenv("GOROUTINE_DUMP")
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR1)
	go func() {
		for range signals {
			if path == "" {
				continue
			}
			f, err := os.Create(path + ".tmp")
			if err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 2)
				f.Close()
				os.Rename(path+".tmp", path)
			}
			fmt.Println("dumped")
			os.Stdout.Sync()
		}
	}()
}

func idleHTTP() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "goroutines:", err)
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	ready(fmt.Sprintf(" port=%d", listener.Addr().(*net.TCPAddr).Port))
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, "goroutines:", err)
		os.Exit(2)
	}
}

func take(first, second *sync.Mutex, holding, both *sync.WaitGroup) {
	defer both.Done()
	first.Lock()
	holding.Done()
	holding.Wait()
	second.Lock() // never returns
	second.Unlock()
	first.Unlock()
}

func tick(ticks *int) {
	for range time.NewTicker(50 * time.Millisecond).C {
		*ticks++
	}
}

func deadlock() {
	var a, b sync.Mutex
	var holding, both sync.WaitGroup
	holding.Add(2)
	both.Add(2)
	go take(&a, &b, &holding, &both)
	go take(&b, &a, &holding, &both)
	ticks := 0
	go tick(&ticks)
	holding.Wait()
	ready("")
	both.Wait()
}

func many(n int) {
	block := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-block
		}()
	}
	started.Wait()
	ready(fmt.Sprintf(" goroutines=%d", n))
	<-block
}

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	dumpOnSignal()
	switch mode {
	case "idle-http":
		idleHTTP()
	case "deadlock":
		deadlock()
	case "many":
		n := 1000
		if len(os.Args) > 2 {
			if v, err := strconv.Atoi(os.Args[2]); err == nil && v > 0 {
				n = v
			}
		}
		many(n)
	default:
		fmt.Fprintln(os.Stderr, "usage: goroutines deadlock | idle-http | many [N]")
		os.Exit(2)
	}
}
