//! The `crmsync` binary: parses the command line and hands it to [`crmsync::cli`].

use clap::Parser;

/// mimalloc, not glibc's malloc: a sync allocates and frees many small
/// strings and maps per record, and glibc spent a third of a 100k-record
/// run's CPU in `malloc`/`free` and chunk consolidation, and kept freed pages
/// as RSS (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_arena_eager_commit` and `mi_option_purge_delay`
/// (their places in `mi_option_t`, mimalloc.h; libmimalloc-sys is pinned).
/// Memory is committed as it is used and given back when freed, not kept for
/// reuse: a backfill's resident memory stays flat (BENCHMARKS.md, backfill).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the options before the first allocation reserves an arena: as a
/// constructor, which runs before Rust's runtime starts allocating.
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

extern "C" fn tune_allocator() {
    // SAFETY: plain option setters, called before any thread starts.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

fn main() -> std::process::ExitCode {
    let cli = crmsync::cli::Cli::parse();
    crmsync::cli::run(cli)
}
