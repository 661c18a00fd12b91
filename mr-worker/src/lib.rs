//! The MapReduce worker: the task loop that talks to the coordinator, the
//! map and reduce engines, the intermediate run file format, and the
//! worker-to-worker shuffle.
//!
//! Imports run one way: binaries -> [`task_loop`] -> [`attempt`] ->
//! [`placement`] -> [`shuffle`] (where bytes come from and go when workers
//! share no files) and [`engine`] (map, reduce, merge and the run file,
//! which know nothing of the network), which reads its inputs through
//! [`source`] (mapped, whole or decompressed). `mrsequential` ([`sequential`]) calls
//! the same engines in one process, so there is one code path to trust; so
//! does `mrworker --replay` ([`replay`]), for one task of a past job.

mod attempt;
pub mod drain;
pub mod engine;
mod outputs;
pub mod placement;
pub mod replay;
pub mod sequential;
pub mod shuffle;
pub mod source;
pub mod task_loop;

pub use mr_protocol::{init_logging, raise_open_file_limit};

/// Makes glibc serve every allocation of 8 MiB or more with its own mapping,
/// returned to the system when freed. By default glibc raises that threshold
/// after large frees and then keeps freed tables and sort buffers in its
/// heap, so a worker's resident size would stay at its high-water mark
/// between tasks instead of following its memory budget. Setting the
/// threshold also pins the heap's trim threshold at its 128 KiB default,
/// so every freed RPC frame of a few MiB would go back to the system and
/// its pages be faulted in and zeroed again for the next one (a tenth of a
/// shared-nothing job's time): up to 16 MiB free at a heap's top is kept.
pub fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}
