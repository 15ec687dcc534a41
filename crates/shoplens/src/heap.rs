//! mimalloc as the global allocator, called the way Rust's layouts need.
//!
//! The `mimalloc` crate passes every allocation to `mi_malloc_aligned`,
//! whose alignment checks cost about 35 instructions more per call than
//! `mi_malloc` (callgrind of `bench --input`: a million allocations per
//! 100,000 events). Every mimalloc block is aligned to at least a word (its
//! smallest size class is a word), so a layout aligned to a word or less
//! takes the plain calls here, and only a wider alignment the aligned ones.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, for `#[global_allocator]`.
pub struct Mimalloc;

// SAFETY: each call hands mimalloc a layout it honours: a size, and an
// alignment that its plain calls meet (at most a word) or that is passed
// on to its aligned calls; blocks are freed and resized by mimalloc.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every size up to a few KiB and every alignment up to a
    /// page come back aligned, keep their bytes through a resize, and are
    /// zeroed when asked.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let heap = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 7, 8, 9, 15, 16, 24, 40, 100, 1000, 5000] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; the block is written within its
                // size and freed with its layout.
                unsafe {
                    let p = heap.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size}/{align}"
                    );
                    p.write_bytes(0xab, size);
                    let q = heap.realloc(p, layout, size * 3);
                    assert!((q as usize).is_multiple_of(align), "resized {size}/{align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xab), "kept {size}/{align}");
                    heap.dealloc(q, Layout::from_size_align(size * 3, align).expect("layout"));
                    let z = heap.alloc_zeroed(layout);
                    assert!((z as usize).is_multiple_of(align), "zeroed {size}/{align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed {size}/{align}");
                    heap.dealloc(z, layout);
                }
            }
        }
    }
}
