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

/// glibc gives each thread that allocates concurrently its own heap arena (up to 8 per core),
/// and memory freed in an arena is rarely returned. Two arenas are enough for this server's
/// allocation pattern and keep the resident size of an idle server small.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
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
