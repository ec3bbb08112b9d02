//! How the process uses the machine: how many cores it may use (cgroup CPU limits included),
//! the embedder's lower scheduling priority, and giving freed heap memory back to the OS.

/// Cores this process may use: the CPU affinity mask and a cgroup CPU quota (as set by
/// `docker run --cpus` or a Kubernetes limit) are both honoured by the standard library.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// ONNX Runtime threads when `embed_threads` is 0 (the default): every core the process may use.
/// The HTTP side stays responsive because the embedder runs at a lower priority
/// ([`lower_this_threads_priority`]) and its workers sleep instead of spinning when idle.
pub fn embed_threads(configured: usize) -> usize {
    if configured == 0 {
        available_cores()
    } else {
        configured
    }
}

/// Gives the calling thread (and the threads it creates afterwards, such as ONNX Runtime's
/// intra-op pool, which inherit it on Linux) a nice value of 10, so request handling wins the
/// CPU whenever both want it and embedding gets what is left. Best effort: a failure is
/// logged and changes nothing else.
pub fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux the nice value is per thread; PRIO_PROCESS with the thread id sets this one.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 10) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not lower the embedder's priority");
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
