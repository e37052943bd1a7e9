// Threads parked in the kernel through Go's frameless assembly leaves: a goroutine
// locked to its thread and blocked in read(2) on a pipe nobody writes (syscall.Read →
// the frameless Syscall6), two goroutines deadlocked on two sync.Mutex (their threads
// park in futex), and a ticker goroutine alive, so the runtime never declares a
// deadlock. Prints "ready pid=N reader=TID" once the reader is in its call.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func deadlock(first, second *sync.Mutex, both *sync.WaitGroup) {
	first.Lock()
	both.Done()
	both.Wait()
	second.Lock()
}

func main() {
	var pipe [2]int
	if err := syscall.Pipe(pipe[:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	reader := make(chan int)
	go func() {
		runtime.LockOSThread()
		reader <- syscall.Gettid()
		var buffer [1]byte
		syscall.Read(pipe[0], buffer[:])
	}()
	tid := <-reader
	var a, b sync.Mutex
	var both sync.WaitGroup
	both.Add(2)
	go deadlock(&a, &b, &both)
	go deadlock(&b, &a, &both)
	go func() {
		for range time.Tick(time.Hour) {
		}
	}()
	fmt.Printf("ready pid=%d reader=%d\n", os.Getpid(), tid)
	select {}
}
