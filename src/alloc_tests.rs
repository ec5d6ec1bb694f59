//! The allocator: the cache's blocks come from its own heap and no others
//! do, entries stay in it, and blocks keep their alignment and bytes when
//! resized.

use super::*;
use switchyard::cache::{CacheKey, Payload, ResponseCache, placement};

unsafe extern "C" {
    fn mi_heap_contains(heap: *const MiHeap, p: *const c_void) -> bool;
}

/// Whether `p` is a block of the cache's heap.
fn in_cache_heap(p: *const u8) -> bool {
    let heap = CACHE_HEAP.load(Ordering::Acquire);
    // SAFETY: a live heap (never deleted once published) and a pointer
    // mimalloc checks against its own pages.
    !heap.is_null() && unsafe { mi_heap_contains(heap, p.cast()) }
}

#[test]
fn blocks_allocated_for_the_cache_come_from_its_heap_and_no_others_do() {
    let a = MiMalloc;
    for (size, align) in [
        (16, 8),
        (48, 8),
        (1024, 8),
        (70_000, 8),
        (100, 64),
        (5000, 4096),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero sizes; each block is freed with its layout.
        unsafe {
            let plain = a.alloc(layout);
            let (cached, zeroed) = placement::within(|| (a.alloc(layout), a.alloc_zeroed(layout)));
            assert!(in_cache_heap(cached), "size {size} align {align}");
            assert!(in_cache_heap(zeroed), "zeroed size {size} align {align}");
            assert!(!in_cache_heap(plain), "plain size {size} align {align}");
            assert_eq!(cached as usize % align, 0);
            assert!((0..size).all(|i| *zeroed.add(i) == 0));
            std::ptr::write_bytes(cached, 0x5A, size);
            let big = Layout::from_size_align(size * 3, align).unwrap();
            let grown = placement::within(|| a.realloc(cached, layout, big.size()));
            assert!(in_cache_heap(grown), "grown in the cache's scope");
            assert!((0..size).all(|i| *grown.add(i) == 0x5A));
            // Outside the scope a cache block may move anywhere, intact.
            let moved = a.realloc(grown, big, size * 7);
            assert!((0..size).all(|i| *moved.add(i) == 0x5A));
            a.dealloc(moved, Layout::from_size_align(size * 7, align).unwrap());
            a.dealloc(zeroed, layout);
            a.dealloc(plain, layout);
        }
    }
}

#[test]
fn the_cache_keeps_its_entries_in_its_heap() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = ResponseCache::new(1 << 20, 1 << 16);
        let body = serde_json::json!({"model": "m", "messages": []});
        let key = CacheKey::chat("r", body.as_object().unwrap());
        let answer = bytes::Bytes::from(vec![b'x'; 900]);
        assert!(!in_cache_heap(answer.as_ptr()));
        let stored = cache
            .insert(
                key,
                Payload::Chat {
                    body: answer,
                    provider: "p".into(),
                },
                std::time::Duration::from_secs(60),
                std::time::Duration::ZERO,
            )
            .await;
        assert!(stored);
        let Some(Payload::Chat { body, .. }) = cache.get(&key).await else {
            panic!("the entry is not there");
        };
        assert_eq!(body.len(), 900);
        assert!(in_cache_heap(body.as_ptr()), "the kept copy is the cache's");
    });
}

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
