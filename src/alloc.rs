//! The binary's global allocator: mimalloc, asked for plain blocks when the
//! alignment Rust wants is one mimalloc gives every block anyway.
//!
//! Place in the pipeline: under everything; a module of the binary only
//! (the library forbids `unsafe` code, and this is the one place the binary
//! allows it). `mimalloc::MiMalloc` passes every allocation to
//! `mi_malloc_aligned`, whose fast path in mimalloc v3 covers only blocks of
//! at most 1 KiB: every larger one (buffers, boxed futures, bodies) took the
//! generic path and was over-allocated by its alignment, about 200
//! instructions instead of about 20, some ten times per chat request. Rust's
//! own `System` allocator makes the same choice: plain `malloc` when the
//! alignment is at most what `malloc` guarantees. Must not do anything but
//! forward to mimalloc.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every mimalloc block of at least this size has
/// (`MI_MAX_ALIGN_SIZE`, `sizeof(max_align_t)`); smaller blocks are aligned
/// to their size class, which is at least the size.
const MIN_ALIGN: usize = 16;

/// Whether a plain mimalloc block satisfies `layout`.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

type Plain = unsafe extern "C" fn(usize) -> *mut c_void;
type Aligned = unsafe extern "C" fn(usize, usize) -> *mut c_void;

/// A block for `layout` from `plain` where its alignment suffices, else
/// from `aligned`.
///
/// # Safety
/// `plain` and `aligned` are mimalloc's allocation functions.
#[inline(always)]
unsafe fn block(layout: Layout, plain_fn: Plain, aligned_fn: Aligned) -> *mut u8 {
    // SAFETY: FFI calls with a size and a power-of-two alignment.
    unsafe {
        if plain(layout.align(), layout.size()) {
            plain_fn(layout.size()).cast()
        } else {
            aligned_fn(layout.size(), layout.align()).cast()
        }
    }
}

/// mimalloc, with plain allocations where they are aligned enough.
pub struct MiMalloc;

// SAFETY: every method forwards to mimalloc, which returns blocks of at
// least the requested size and alignment (plain blocks only where `plain`
// says their guaranteed alignment suffices), and frees any block it
// returned, whichever function returned it.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions.
        unsafe { block(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's zeroing allocation functions.
        unsafe { block(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the
        // caller's contract); the new block keeps the alignment.
        unsafe {
            if plain(layout.align(), new_size) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes_when_resized() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [
                1,
                7,
                8,
                15,
                16,
                24,
                100,
                1024,
                1025,
                4000,
                8192,
                70_000,
                3 << 20,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    std::ptr::write_bytes(p, 0xA5, size);
                    let grown = a.realloc(p, layout, size * 2 + 1);
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xA5));
                    a.dealloc(grown, Layout::from_size_align(size * 2 + 1, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
