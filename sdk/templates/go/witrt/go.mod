// A stand-in for the `go.bytecodealliance.org/pkg` module that `wit-bindgen go`
// code imports: the real one cannot be fetched here (no Go module proxy), so
// go.mod replaces it with this directory. It implements only what the
// generated bindings use: wit/types (Option, Result) and wit/runtime
// (Allocate, Unpin, cabi_realloc).
module go.bytecodealliance.org/pkg

go 1.25
