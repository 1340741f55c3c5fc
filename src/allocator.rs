//! The allocator every reminder binary ships: jemalloc, handing freed memory back to the system
//! after a second instead of after jemalloc's default ten.
//!
//! Under load the process has many threads and many short-lived buffers, which glibc's `malloc`
//! and `free` handle at a high CPU cost and jemalloc cheaply. With jemalloc's defaults, freed
//! pages stay resident for 10 s (`dirty_decay_ms`) and count in the process's peak memory;
//! returning them after a second keeps the peak lower without costing throughput.
//! `muzzy_decay_ms:0` is this build's default already; it is spelled out so the pages are
//! returned, not kept as "muzzy".
//! `_RJEM_MALLOC_CONF` in the environment still overrides these settings.

pub use tikv_jemallocator::Jemalloc;

/// jemalloc's settings, as the C string it reads from the `malloc_conf` symbol.
#[repr(transparent)]
pub struct Conf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static C string that nothing writes.
unsafe impl Sync for Conf {}

pub const CONF: Conf = Conf(c"dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// Makes jemalloc, with [`CONF`], the allocator of the binary whose root calls it. jemalloc
/// looks its settings up as a symbol of the final binary, so each binary defines it: a static
/// of the library would be left out by the linker, since jemalloc carries a weak default.
#[macro_export]
macro_rules! jemalloc {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::allocator::Jemalloc = $crate::allocator::Jemalloc;

        #[unsafe(export_name = "_rjem_malloc_conf")]
        static MALLOC_CONF: $crate::allocator::Conf = $crate::allocator::CONF;
    };
}
