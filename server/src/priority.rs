//! Thread CPU priorities: background threads (the snapshot writer, a follower given
//! `BOXOFFICE_FOLLOWER_NICE`) yield the cores to the HTTP workers and the shard threads.

/// Sets the calling thread's nice value (0 normal, 19 the lowest priority).
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}
