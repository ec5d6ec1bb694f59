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
//! alignment is at most what `malloc` guarantees.
//!
//! Blocks allocated while the cache works (`switchyard::cache::placement`
//! marks the thread) come from a mimalloc heap of their own: v3 heaps are
//! usable from any thread and keep their blocks on pages of their own, so
//! the pages of expired entries empty out whole instead of each being
//! pinned by a request-path object that outlived them. Must not do
//! anything but choose the heap and forward to mimalloc.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// A mimalloc heap (opaque).
#[repr(C)]
struct MiHeap {
    _opaque: [u8; 0],
}

// mimalloc v3's first-class heaps. Declared here because libmimalloc-sys
// exports them only with its `extended` feature, which adds a dependency
// (and names v2's signatures); the symbols are in the library it links.
unsafe extern "C" {
    fn mi_collect(force: bool);
    fn mi_heap_new() -> *mut MiHeap;
    fn mi_heap_delete(heap: *mut MiHeap);
    fn mi_heap_malloc(heap: *mut MiHeap, size: usize) -> *mut c_void;
    fn mi_heap_zalloc(heap: *mut MiHeap, size: usize) -> *mut c_void;
    fn mi_heap_malloc_aligned(heap: *mut MiHeap, size: usize, align: usize) -> *mut c_void;
    fn mi_heap_zalloc_aligned(heap: *mut MiHeap, size: usize, align: usize) -> *mut c_void;
    fn mi_heap_realloc(heap: *mut MiHeap, p: *mut c_void, size: usize) -> *mut c_void;
    fn mi_heap_realloc_aligned(
        heap: *mut MiHeap,
        p: *mut c_void,
        size: usize,
        align: usize,
    ) -> *mut c_void;
}

/// Every `period`, lets mimalloc return the pages it has freed. mimalloc
/// gives a freed page back to the system 100 ms after it emptied, but only
/// when a later allocation or free on some thread looks: a gateway that
/// went idle after a burst kept up to 19 MiB of freed pages resident
/// (`cargo bench --bench memory`, measured right after the burst). A
/// normal, not forced, collection: it purges only what is due.
pub async fn purge_freed(period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: FFI without arguments to check.
        unsafe { mi_collect(false) };
    }
}

/// The cache's heap, made on first use (the allocator is process-wide, so
/// its heap is too).
static CACHE_HEAP: AtomicPtr<MiHeap> = AtomicPtr::new(null_mut());

/// Whether this thread is working for the cache (one thread-local read).
#[inline(always)]
fn for_cache() -> bool {
    switchyard::cache::placement::active()
}

/// The cache's heap; `None` if mimalloc could not make one.
#[inline]
fn cache_heap() -> Option<*mut MiHeap> {
    let heap = CACHE_HEAP.load(Ordering::Acquire);
    if heap.is_null() {
        new_cache_heap()
    } else {
        Some(heap)
    }
}

#[cold]
fn new_cache_heap() -> Option<*mut MiHeap> {
    // SAFETY: FFI; mimalloc builds heaps from its own metadata memory, not
    // through this allocator.
    let heap = unsafe { mi_heap_new() };
    if heap.is_null() {
        return None;
    }
    match CACHE_HEAP.compare_exchange(null_mut(), heap, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(heap),
        Err(first) => {
            // Another thread made one first: this one holds no blocks.
            // SAFETY: `heap` is ours and empty.
            unsafe { mi_heap_delete(heap) };
            Some(first)
        }
    }
}

/// `alloc` or `alloc_zeroed` for the cache: out of line, so that the
/// common path stays one test and a jump.
///
/// # Safety
/// As [`GlobalAlloc::alloc`].
#[inline(never)]
unsafe fn cache_block(layout: Layout, zeroed: bool) -> *mut u8 {
    // SAFETY: mimalloc's allocation functions, on a live heap.
    unsafe {
        match (cache_heap(), zeroed) {
            (None, _) => own_block(layout, zeroed),
            (Some(heap), false) => block(
                layout,
                |size| mi_heap_malloc(heap, size),
                |size, align| mi_heap_malloc_aligned(heap, size, align),
            ),
            (Some(heap), true) => block(
                layout,
                |size| mi_heap_zalloc(heap, size),
                |size, align| mi_heap_zalloc_aligned(heap, size, align),
            ),
        }
    }
}

/// `realloc` for the cache, out of line as [`cache_block`].
///
/// # Safety
/// As [`GlobalAlloc::realloc`].
#[inline(never)]
unsafe fn cache_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: `ptr` came from this allocator with `layout`; a live heap.
    unsafe {
        let Some(heap) = cache_heap() else {
            return own_realloc(ptr, layout, new_size);
        };
        let p = ptr.cast::<c_void>();
        block(
            Layout::from_size_align_unchecked(new_size, layout.align()),
            |size| mi_heap_realloc(heap, p, size),
            |size, align| mi_heap_realloc_aligned(heap, p, size, align),
        )
    }
}

/// The alignment every mimalloc block of at least this size has
/// (`MI_MAX_ALIGN_SIZE`, `sizeof(max_align_t)`); smaller blocks are aligned
/// to their size class, which is at least the size.
const MIN_ALIGN: usize = 16;

/// Whether a plain mimalloc block satisfies `layout`.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// A block for `layout` from `plain_fn(size)` where a plain block's
/// alignment suffices, else from `aligned_fn(size, align)`: one of
/// mimalloc's function pairs (malloc, zalloc or realloc, of the thread's
/// own heap or of the cache's).
#[inline(always)]
fn block(
    layout: Layout,
    plain_fn: impl FnOnce(usize) -> *mut c_void,
    aligned_fn: impl FnOnce(usize, usize) -> *mut c_void,
) -> *mut u8 {
    if plain(layout.align(), layout.size()) {
        plain_fn(layout.size()).cast()
    } else {
        aligned_fn(layout.size(), layout.align()).cast()
    }
}

/// A block (zeroed if `zeroed`) from the thread's own heap. Callers pass
/// a constant, so each keeps one pair of calls.
///
/// # Safety
/// As [`GlobalAlloc::alloc`].
#[inline(always)]
unsafe fn own_block(layout: Layout, zeroed: bool) -> *mut u8 {
    // SAFETY: FFI calls with a size and a power-of-two alignment.
    unsafe {
        if zeroed {
            block(
                layout,
                |size| mi_zalloc(size),
                |size, align| mi_zalloc_aligned(size, align),
            )
        } else {
            block(
                layout,
                |size| mi_malloc(size),
                |size, align| mi_malloc_aligned(size, align),
            )
        }
    }
}

/// `realloc` on the thread's own heap.
///
/// # Safety
/// As [`GlobalAlloc::realloc`].
#[inline(always)]
unsafe fn own_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let p = ptr.cast::<c_void>();
    // SAFETY: `ptr` came from this allocator with `layout` and the caller
    // guarantees `new_size` rounded up to the alignment fits a `Layout`;
    // the new block keeps the alignment.
    unsafe {
        block(
            Layout::from_size_align_unchecked(new_size, layout.align()),
            |size| mi_realloc(p, size),
            |size, align| mi_realloc_aligned(p, size, align),
        )
    }
}

/// mimalloc, with plain allocations where they are aligned enough.
pub struct MiMalloc;

// SAFETY: every method forwards to mimalloc, which returns blocks of at
// least the requested size and alignment (plain blocks only where `plain`
// says their guaranteed alignment suffices), and frees any block it
// returned, whichever function (and heap) returned it.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions.
        unsafe {
            if for_cache() {
                return cache_block(layout, false);
            }
            own_block(layout, false)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's zeroing allocation functions.
        unsafe {
            if for_cache() {
                return cache_block(layout, true);
            }
            own_block(layout, true)
        }
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
            if for_cache() {
                return cache_realloc(ptr, layout, new_size);
            }
            own_realloc(ptr, layout, new_size)
        }
    }
}

#[cfg(test)]
#[path = "alloc_tests.rs"]
mod tests;
