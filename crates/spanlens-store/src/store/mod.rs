//! The storage contract: small traits by job, and [`Store`], their sum, which the server and
//! the CLI hold as `Arc<dyn Store>`.
//!
//! Each trait documents what a caller observes, whatever the backend. Reads are `async`: a
//! backend that blocks (SQLite) hands its work to a blocking pool itself, so callers never wrap
//! calls. Work that needs only the traits (re-pricing, the recovery report from a scan) lives
//! in [`crate::domain`], not in a backend.

mod analytics;
mod eraser;
mod media;
mod reader;
mod scores;
mod state;
mod writer;

pub use analytics::{Analytics, ScanSender, SpanBatches};
pub use eraser::{Erased, Eraser, Expiry, ERASE_BATCH, MAX_EXPIRE_LIMIT};
pub use media::{
    check_media, check_media_hash, is_media_hash, MediaStore, MediaUsage, StoredMedia,
};
pub use reader::TraceReader;
pub use scores::ScoreStore;
pub use state::{
    check_prefix, check_state, Lease, SharedState, MAX_LISTED_STATE, MAX_STATE_KEY, MAX_STATE_VALUE,
};
pub use writer::SpanWriter;

/// A span database: everything the server needs, whichever engine holds the data.
pub trait Store:
    SpanWriter + TraceReader + Analytics + ScoreStore + SharedState + Eraser + MediaStore
{
}

impl<
        T: SpanWriter
            + TraceReader
            + Analytics
            + ScoreStore
            + SharedState
            + Eraser
            + MediaStore
            + ?Sized,
    > Store for T
{
}
