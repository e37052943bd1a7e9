module iokit-snap/test/targets/go

go 1.19
