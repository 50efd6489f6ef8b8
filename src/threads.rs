//! The thread pool every parallel loop of the engine runs in: rayon's, but one per process.
//!
//! A child made by `fork()` (Python's multiprocessing on Linux, Brian2's own
//! `examples/multiprocessing/`) inherits the parent's memory without its threads: rayon's
//! global pool would then wait forever for workers that do not exist. The pool is keyed by
//! the process id, so a child builds its own on first use (the parent's is left alone).

use std::sync::Mutex;

use rayon::ThreadPool;

/// This process's pool (`RAYON_NUM_THREADS` threads if set, else one per core).
pub fn pool() -> &'static ThreadPool {
    static POOL: Mutex<Option<(u32, &'static ThreadPool)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, pool)) = *slot
        && owner == pid
    {
        return pool;
    }
    // An inherited pool is leaked, not dropped: dropping would signal its absent threads.
    let pool: &'static ThreadPool = Box::leak(Box::new(
        rayon::ThreadPoolBuilder::new()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the engine's threads: {e}")),
    ));
    *slot = Some((pid, pool));
    pool
}

/// Run `op` in this process's pool (parallel iterators inside it use that pool).
pub fn install<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    pool().install(op)
}
