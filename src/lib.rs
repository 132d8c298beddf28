//! sluis: a secure-mail gateway. Mail flows one way:
//! SMTP in → (inspect → policy → protect: seal, store, rewrite) → relay queue → next hop.

pub mod admit;
pub mod config;
pub mod conncap;
pub mod control;
pub mod crew;
pub mod dkim;
pub mod explain;
pub mod fsutil;
pub mod headers;
pub mod inspect;
pub mod marker;
pub mod metrics;
pub mod notice;
pub mod pipeline;
pub mod policy;
pub mod protect;
pub mod queue;
pub mod relay;
pub mod rewrite;
pub mod seal;
pub mod serve;
pub mod sms;
pub mod smtp;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod units;
pub mod web;

/// Keeps the buffers of ordinary mail (up to tens of MiB) in the heap for reuse. By default
/// glibc maps every allocation over 128 KiB afresh and unmaps it when freed, so each message
/// paid a page fault per 4 KiB of every buffer: on a VM that cost more than decoding and
/// sealing together. Larger buffers are still mapped, and returned when freed. Call it first
/// thing in `main`, before other threads start (the benchmarks do the same).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
