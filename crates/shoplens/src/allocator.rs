//! The allocator and its runtime options, set once at start.

/// mimalloc instead of glibc's malloc: the pipeline allocates and frees
/// small strings per event, and glibc's free-list consolidation took about
/// a quarter of the in-process profile (docs/performance.md).
#[global_allocator]
static ALLOCATOR: shoplens::heap::Mimalloc = shoplens::heap::Mimalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, the same
/// in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes the allocator for a stream that frees and allocates about as much
/// every tick (decoded events, rows, insert buffers, snapshots); each
/// setting gives way to its `MIMALLOC_*` environment variable.
/// - Freed memory is kept for a second before it goes back to the OS, so
///   that the next tick does not fault it back in. That is mimalloc 3's
///   own default (`options.c`; the header's comment says 10 ms, mimalloc 2's);
///   it is set here so that another mimalloc does not change it
///   (`MIMALLOC_PURGE_DELAY`, milliseconds).
/// - Transparent huge pages are off for the process
///   (`prctl(PR_SET_THP_DISABLE)`, what `MIMALLOC_ALLOW_THP=0` does at
///   mimalloc's start; `MIMALLOC_ALLOW_THP=1` keeps them). mimalloc asks
///   for them on its arenas, and each first touch of a 2 MiB page zeroed
///   all of it: in `product.sh` the kernel's zeroing was 15 % of the
///   pipeline's CPU, and without them the system time fell in every pair
///   and the CPU by about 7 % (docs/performance.md, Round 15). The flag
///   is read at each page fault, so memory mapped before `main` is
///   covered.
pub(crate) fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain option value of the allocator in use; safe
        // at any time (mimalloc reads it at each purge).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1_000) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a plain prctl on this process; it changes how later page
        // faults are served, nothing Rust holds. A kernel without the
        // option returns an error, which leaves huge pages as they were.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Huge pages are off for the process once the allocator is tuned,
    /// unless the environment decides.
    #[cfg(target_os = "linux")]
    #[test]
    fn tuning_turns_transparent_huge_pages_off() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return; // the environment decides
        }
        tune();
        // SAFETY: reads this process's flag.
        let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(off, 1, "PR_GET_THP_DISABLE after tune");
    }

    /// The option is named by its place in mimalloc's enum: at that place
    /// mimalloc 3 reads the purge delay's default, 1 s (a place shifted by
    /// another mimalloc would read another option's value), and at the
    /// place 11 before it `arena_eager_commit`'s, 2.
    #[test]
    fn the_purge_delay_is_named_by_its_place() {
        if std::env::vars().any(|(k, _)| k.starts_with("MIMALLOC_")) {
            return; // the environment sets them: nothing of ours to check
        }
        // SAFETY: reads plain option values of the allocator.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 1_000, "purge_delay");
        assert_eq!(get(MI_OPTION_PURGE_DELAY - 11), 2, "arena_eager_commit");
    }
}
