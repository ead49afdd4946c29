//! The process's allocator: the system allocator behind a small per-thread cache of freed
//! blocks up to 8 kB.
//!
//! Why: each proxied request allocates about a dozen blocks and frees them when its answer
//! ends. With many requests in flight, glibc's per-thread cache (7 blocks per size, nothing over
//! 1 kB) overflows, and the request's future (about 6 kB) always takes glibc's slow path: about
//! 2,000 instructions per request went to malloc and free (docs/benchmarks.md). Here a freed
//! block of a cached size waits on its thread's list for the next allocation of that size.
//!
//! Blocks are rounded up to their size class when they are taken from the system, so any block
//! of a class serves any request of it. A list holds a bounded number of blocks (about 2 MB per
//! thread at most, if every class filled up); the rest go back to the system. Blocks may be freed on another thread than
//! the one that took them: they join that thread's list, or go back to the system.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

/// Sizes up to this are cached; larger blocks go straight to the system.
const MAX_CACHED: usize = 8192;
/// Small classes are 16 bytes apart (as glibc's own chunk sizes, so that rounding up wastes no
/// more than it does), up to 1 kB; then 2, 4 and 8 kB.
const SMALL_STEP: usize = 16;
const SMALL_MAX: usize = 1024;
const SMALL_CLASSES: usize = SMALL_MAX / SMALL_STEP;
const CLASSES: usize = SMALL_CLASSES + 3;
/// Alignment every cached block has (what the system allocator gives on 64-bit targets).
const ALIGN: usize = 16;
/// Blocks kept per class: small ones, and 2 to 8 kB ones.
const KEEP_SMALL: u32 = 64;
const KEEP_LARGE: u32 = 32;

/// The allocator installed by the binary (`#[global_allocator]` in main.rs).
pub struct CachingAlloc;

/// A thread's free lists: the head of each class's list (blocks linked through their first
/// word) and its length.
struct Cache {
    heads: [*mut u8; CLASSES],
    lens: [u32; CLASSES],
}

thread_local! {
    // Const-initialised and without a destructor: reachable from inside the allocator at any
    // point of a thread's life (a lazily set-up or dropped thread-local would allocate or
    // fail). Blocks cached when a thread ends stay allocated; the runtime's threads live as long
    // as the process.
    static CACHE: UnsafeCell<Cache> = const {
        UnsafeCell::new(Cache {
            heads: [ptr::null_mut(); CLASSES],
            lens: [0; CLASSES],
        })
    };
}

/// The class of a layout, and the size its blocks have; `None` when it is not cached.
#[inline]
fn class(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size();
    if size == 0 || size > MAX_CACHED || layout.align() > ALIGN {
        return None;
    }
    if size <= SMALL_MAX {
        let i = (size - 1) / SMALL_STEP;
        return Some((i, (i + 1) * SMALL_STEP));
    }
    // 1025..=2048 → 2 kB, ..=4096 → 4 kB, ..=8192 → 8 kB.
    let rounded = size.next_power_of_two();
    let i = SMALL_CLASSES + (rounded.trailing_zeros() as usize - 11);
    Some((i, rounded))
}

#[inline]
fn keep(class: usize) -> u32 {
    if class < SMALL_CLASSES {
        KEEP_SMALL
    } else {
        KEEP_LARGE
    }
}

/// The layout a block of `size` bytes (a class size) is taken from the system with.
#[inline]
fn block_layout(size: usize) -> Layout {
    // A class size is a non-zero multiple of 16, far below isize::MAX: always valid.
    match Layout::from_size_align(size, ALIGN) {
        Ok(l) => l,
        Err(_) => unreachable_layout(),
    }
}

#[cold]
fn unreachable_layout() -> ! {
    std::process::abort()
}

/// A block from this thread's list of `class`, if it has one.
#[inline]
fn pop(class: usize) -> Option<NonNull<u8>> {
    CACHE
        .try_with(|c| {
            // SAFETY: the cache is this thread's own, and nothing in here can re-enter the
            // allocator while the reference lives.
            let cache = unsafe { &mut *c.get() };
            let head = NonNull::new(cache.heads[class])?;
            // SAFETY: a cached block is at least 16 bytes, 16-aligned, and its first word holds
            // the next block's address (written by `push`).
            cache.heads[class] = unsafe { head.as_ptr().cast::<*mut u8>().read() };
            cache.lens[class] -= 1;
            Some(head)
        })
        .ok()
        .flatten()
}

/// Puts a block of `class` on this thread's list; `false` when the list is full.
#[inline]
fn push(class: usize, block: *mut u8) -> bool {
    CACHE
        .try_with(|c| {
            // SAFETY: as in `pop`.
            let cache = unsafe { &mut *c.get() };
            if cache.lens[class] >= keep(class) {
                return false;
            }
            // SAFETY: the block is ours now (being freed), at least 16 bytes and 16-aligned.
            unsafe { block.cast::<*mut u8>().write(cache.heads[class]) };
            cache.heads[class] = block;
            cache.lens[class] += 1;
            true
        })
        .unwrap_or(false)
}

// SAFETY: every block handed out is either the system allocator's own answer for the layout or
// a block of at least the layout's size and alignment (its class's size, 16-aligned) that no one
// else holds; blocks go back to the system with the layout they were taken with.
unsafe impl GlobalAlloc for CachingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some((c, size)) => match pop(c) {
                Some(block) => block.as_ptr(),
                None => unsafe { System.alloc(block_layout(size)) },
            },
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            Some((c, size)) => {
                if !push(c, ptr) {
                    unsafe { System.dealloc(ptr, block_layout(size)) }
                }
            }
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some((c, size)) => match pop(c) {
                Some(block) => {
                    unsafe { block.as_ptr().write_bytes(0, layout.size()) };
                    block.as_ptr()
                }
                None => unsafe { System.alloc_zeroed(block_layout(size)) },
            },
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (of the layout): the caller guarantees new_size fits the alignment's rules.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // Neither is cached: the system can grow the block in place.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            // The same class: the block already has room.
            (Some((a, _)), Some((b, _))) if a == b => ptr,
            _ => {
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    let keep = layout.size().min(new_size);
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, new, keep);
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_sizes() {
        for size in 1..=MAX_CACHED {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let (c, block) = class(layout).unwrap();
            assert!(block >= size, "size {size} in a {block}-byte class");
            assert!(c < CLASSES);
            // Every size of a class gets the same block size.
            assert_eq!(
                class(Layout::from_size_align(block, 8).unwrap()),
                Some((c, block))
            );
        }
        assert_eq!(
            class(Layout::from_size_align(MAX_CACHED + 1, 8).unwrap()),
            None
        );
        assert_eq!(class(Layout::from_size_align(64, 32).unwrap()), None);
        assert_eq!(class(Layout::from_size_align(0, 1).unwrap()), None);
    }

    #[test]
    fn blocks_are_reused_and_keep_their_contents_through_realloc() {
        let a = CachingAlloc;
        let layout = Layout::from_size_align(6000, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % ALIGN, 0);
            a.dealloc(p, layout);
            // The freed block is this thread's next block of the class.
            let q = a.alloc(Layout::from_size_align(5000, 8).unwrap());
            assert_eq!(p, q);
            for i in 0..5000 {
                q.add(i).write(i as u8);
            }
            // Grown out of the cached sizes: contents kept.
            let r = a.realloc(q, Layout::from_size_align(5000, 8).unwrap(), 20_000);
            for i in 0..5000 {
                assert_eq!(r.add(i).read(), i as u8);
            }
            // Shrunk back into a class.
            let s = a.realloc(r, Layout::from_size_align(20_000, 8).unwrap(), 100);
            for i in 0..100 {
                assert_eq!(s.add(i).read(), i as u8);
            }
            a.dealloc(s, Layout::from_size_align(100, 8).unwrap());
            let z = a.alloc_zeroed(Layout::from_size_align(100, 8).unwrap());
            assert!((0..100).all(|i| z.add(i).read() == 0));
            a.dealloc(z, Layout::from_size_align(100, 8).unwrap());
        }
    }

    #[test]
    fn a_full_list_returns_blocks_to_the_system() {
        let a = CachingAlloc;
        let layout = Layout::from_size_align(3000, 8).unwrap();
        let blocks: Vec<*mut u8> = (0..KEEP_LARGE + 8)
            .map(|_| unsafe { a.alloc(layout) })
            .collect();
        for &b in &blocks {
            unsafe { a.dealloc(b, layout) };
        }
        let kept = CACHE.with(|c| unsafe { (*c.get()).lens[class(layout).unwrap().0] });
        assert_eq!(kept, KEEP_LARGE);
    }
}
