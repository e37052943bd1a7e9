// The least Go program: the runtime and a read(2) through syscall. Cross-compiled for
// arm64 by the ELF tests, for whom the runtime's ~1,000 functions are the point and a
// larger program would only cost build time (no std for arm64 comes prebuilt).
package main

import "syscall"

func main() {
	var buffer [1]byte
	syscall.Read(0, buffer[:])
}
