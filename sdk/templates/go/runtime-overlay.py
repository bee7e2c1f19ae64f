"""Writes a `go build -overlay` file that patches two files of Go's own runtime
for a component's WASI adapter (see README.md, "Why experimental").

Big Go on wasip1 assumes it alone grows linear memory: its sbrk grows memory
from where *it* last left it. In a component, the WASI preview1 adapter also
grows memory (by a page, for its own state, built with
`--realloc-via-memory-grow`), and Go's next growth then hands the adapter's
page to the Go heap, which overwrites the adapter's state ("assertion failed at
adapter line ..."). The patch makes the runtime skip pages it did not grow
(`syncBloc`) before it reserves memory. Patterns are checked: a Go release
that moves this code makes the build fail here instead of a plugin fail later.

usage: runtime-overlay.py GOROOT OUTDIR  (prints the overlay file's path)
"""

import json
import os
import sys

goroot, outdir = sys.argv[1], sys.argv[2]
src = os.path.join(goroot, "src", "runtime")
os.makedirs(outdir, exist_ok=True)

SYNC = '''
// syncBloc skips linear-memory pages this runtime did not grow: a component's
// WASI adapter keeps its state there. memlock must be held.
func syncBloc() {
	if cur := uintptr(currentMemory()) * physPageSize; cur > blocMax {
		if bloc < blocMax {
			memFree(unsafe.Pointer(bloc), blocMax-bloc)
		}
		bloc, blocMax = cur, cur
	}
}
'''

PATCHES = {
    "mem_wasm.go": [("func sbrk(n uintptr) unsafe.Pointer {", SYNC.lstrip("\n") + "\nfunc sbrk(n uintptr) unsafe.Pointer {")],
    "mem_sbrk.go": [
        ("func memAlloc(n uintptr) unsafe.Pointer {\n", "func memAlloc(n uintptr) unsafe.Pointer {\n\tsyncBloc()\n"),
        ("\t\tlock(&memlock)\n\t\tif uintptr(v) == bloc {", "\t\tlock(&memlock)\n\t\tsyncBloc()\n\t\tif uintptr(v) == bloc {"),
        ("\t\t// Round up bloc to align, then allocate size.\n", "\t\tsyncBloc()\n\t\t// Round up bloc to align, then allocate size.\n"),
    ],
}

replace = {}
for name, patches in PATCHES.items():
    with open(os.path.join(src, name)) as f:
        text = f.read()
    for old, new in patches:
        if text.count(old) != 1:
            sys.exit(f"runtime-overlay: {name} of this Go ({goroot}) no longer has {old.strip()!r}; update the patch")
        text = text.replace(old, new)
    out = os.path.join(outdir, name)
    with open(out, "w") as f:
        f.write(text)
    replace[os.path.join(src, name)] = out

overlay = os.path.join(outdir, "overlay.json")
with open(overlay, "w") as f:
    json.dump({"Replace": replace}, f)
print(overlay)
