// Package runtime: memory for the canonical ABI, as wit-bindgen go bindings
// use it, for big Go (GOOS=wasip1) guests.
//
// The host writes a call's arguments into guest memory through cabi_realloc
// before the export runs. Allocating on the Go heap there is unsafe: a GC may
// start, and the GC reads the clock through WASI, which the canonical ABI
// forbids while arguments are being lowered ("cannot leave component
// instance"). So cabi_realloc serves a static bump arena instead, and Unpin,
// which the bindings call once the arguments are lifted into Go values, resets
// it. Consequences:
//   - argument strings point into the arena: a plugin must not keep them
//     beyond the call (copy with strings.Clone to keep one);
//   - one call's arguments must fit the arena (ArenaSize); a bigger batch
//     traps, and the host then retries it record by record.
package runtime

import (
	"runtime"
	"unsafe"
)

// ArenaSize bounds the arguments of one call.
const ArenaSize = 8 << 20

var arena [ArenaSize]byte
var used uintptr

//go:wasmexport cabi_realloc
func cabiRealloc(ptr unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	if newSize == 0 {
		return unsafe.Pointer(align)
	}
	base := uintptr(unsafe.Pointer(&arena[0]))
	start := (base + used + align - 1) &^ (align - 1)
	if start+newSize > base+ArenaSize {
		// Cannot print or panic here (printing is a WASI call).
		// An address past any memory: the host refuses it with a clear trap.
		return unsafe.Pointer(^uintptr(0) - 7)
	}
	if ptr != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(start)), newSize), unsafe.Slice((*byte)(ptr), min(oldSize, newSize)))
	}
	used = start + newSize - base
	return unsafe.Pointer(start)
}

// Unpin is called by the bindings once the arguments are lifted: the arena is free again.
func Unpin() {
	used = 0
}

// Allocate returns size bytes aligned to align on the Go heap, kept alive by pinner
// until the bindings unpin it (after the host has copied the results).
func Allocate(pinner *runtime.Pinner, size, align uintptr) unsafe.Pointer {
	if size == 0 {
		return unsafe.Pointer(align)
	}
	buf := make([]byte, size+align)
	pinner.Pin(&buf[0])
	p := uintptr(unsafe.Pointer(&buf[0]))
	return unsafe.Pointer((p + align - 1) &^ (align - 1))
}
