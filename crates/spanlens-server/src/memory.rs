//! Giving memory back after a burst.
//!
//! glibc's allocator keeps freed memory in its arenas for reuse. After an overload (200 senders
//! plus 24 sending ~12 MB requests) the server held 831 MB of freed memory for as long as it
//! stayed idle. Once ingest has been idle for [`IDLE_BEFORE_TRIM`], free pages are handed back
//! to the kernel (measured with `scripts/overload`, see the README: about 100 MB ten seconds
//! after the load). The trim never runs under load, where it would only cost time.
//!
//! Capping glibc at two arenas (`M_ARENA_MAX`) lowered the peak a little more but cost 20% of
//! the ingest rate (threads queueing on the arena locks), so the arenas are left as they are.

use crate::AppState;
use std::time::Duration;

/// How long ingest must be idle before free memory is given back.
pub const IDLE_BEFORE_TRIM: Duration = Duration::from_secs(5);

/// Returns free heap pages to the kernel (glibc); a no-op elsewhere.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims once after each burst of ingest, when nothing has arrived for [`IDLE_BEFORE_TRIM`]
/// and no request holds bytes, until `stopped` resolves.
pub async fn release_when_idle(state: AppState, stopped: impl std::future::Future<Output = ()>) {
    let mut seen = state.requests_received();
    let mut quiet_since = tokio::time::Instant::now();
    let mut trimmed = true;
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut stopped => return,
        }
        let now = state.requests_received();
        if now != seen || state.budget().used() > 0 {
            seen = now;
            quiet_since = tokio::time::Instant::now();
            trimmed = false;
        } else if !trimmed && quiet_since.elapsed() >= IDLE_BEFORE_TRIM {
            trimmed = true;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}
