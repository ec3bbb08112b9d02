//! How the process uses the machine: how many cores it may use (cgroup CPU limits included),
//! the embedder's lower scheduling priority, and giving freed heap memory back to the OS.

/// Cores this process may use: the CPU affinity mask and a cgroup CPU quota (as set by
/// `docker run --cpus` or a Kubernetes limit) are both honoured by the standard library.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// ONNX Runtime threads when `embed_threads` is 0 (the default): every core the process may use.
/// The HTTP side stays responsive because the embedder runs at the lowest priority
/// ([`lower_this_threads_priority`]) and its workers sleep instead of spinning when idle.
pub fn embed_threads(configured: usize) -> usize {
    if configured == 0 {
        available_cores()
    } else {
        configured
    }
}

/// Puts the calling thread (and the threads it creates afterwards, such as ONNX Runtime's
/// intra-op pool, which inherit it on Linux) in the `SCHED_IDLE` class: it runs only when no
/// ordinary thread of the process wants the core, and a request-handling thread that wakes up
/// takes the core from it at once. A nice value of 10 (the fallback) still left the embedder
/// about a tenth of a contended core and let it finish its time slice first, which cost SQLite
/// ingest with the worker busy about a seventh of its rate (BENCHMARKS.md, "Why ingest is built this way").
/// Embedding loses nothing when ingest is quiet, and with autogroup scheduling the class only
/// ranks the embedder against this process's own threads. Best effort: a failure is logged
/// and changes nothing else.
pub fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // Scheduling class and nice value are per thread on Linux; the thread id selects this one.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
        let idle = libc::sched_param { sched_priority: 0 };
        if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &idle) } == 0 {
            return;
        }
        let idle_error = std::io::Error::last_os_error();
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), %idle_error, "could not lower the embedder's priority");
        }
    }
}

/// Model runs allocate tens of MiB at a time (ONNX Runtime's CPU arena is off, so memory is
/// given back after a backlog). By default glibc serves such blocks with mmap and unmaps them
/// on free, and every run then pays for faulting fresh zeroed pages in: a third of the speed
/// on long texts. Served from the heap and kept there while the worker is busy, they are
/// reused; [`trim_heap`] gives them back when the worker goes idle.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// Returns free heap pages to the OS (after a burst of embedding, for example). Takes about a
/// millisecond on a heap of a few hundred MiB; call it when going idle, not per request.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}
