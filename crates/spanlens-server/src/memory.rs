//! Giving memory back after a burst.
//!
//! glibc's allocator keeps freed memory in its arenas for reuse, and by default creates up to
//! eight arenas per core as threads contend. After an overload (200 senders plus 24 sending
//! ~12 MB requests) the server held 831 MB of freed memory for as long as it stayed idle. Two
//! settings fix that without changing allocator (measured with `scripts/overload`, see the
//! README): at most [`ARENAS`] arenas, so freed memory is shared instead of stranded per
//! thread, and a trim once ingest has been idle for [`IDLE_BEFORE_TRIM`], which returns free
//! pages to the kernel. The trim never runs under load, where it would only cost time.

use crate::AppState;
use std::time::Duration;

/// Arenas the allocator may create (glibc's default is eight per core).
pub const ARENAS: i32 = 2;

/// How long ingest must be idle before free memory is given back.
pub const IDLE_BEFORE_TRIM: Duration = Duration::from_secs(5);

/// Caps the allocator's arenas; call once at start, before the runtime's threads exist.
pub fn cap_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

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
