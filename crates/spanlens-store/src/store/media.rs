//! Media blobs (images, audio) taken out of span payloads, stored once per project and content
//! hash, and kept while a trace of the project refers to them.

use crate::error::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use spanlens_core::media::{sniff, MediaBlob, MAX_MEDIA_BYTES};
use spanlens_core::TraceId;

/// A stored medium as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// The type sniffed from the bytes when they were taken out (`image/png`, `audio/wav`, …).
    pub mime: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a project's media take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUsage {
    /// Distinct blobs stored.
    pub blobs: u64,
    /// Their bytes, added up.
    pub bytes: u64,
}

/// Keeps media blobs by content hash, per project.
///
/// What callers observe, whatever the backend:
/// - Blobs are per project: a hash stored in one project is absent from every other (whether
///   an image exists must not leak between projects), and is stored again in each.
/// - [`put_media`](MediaStore::put_media) is idempotent: a hash the project already holds is
///   not written again, and the call says how many bytes it newly stored. Once it returns, a
///   read finds every blob it was given.
/// - A blob is kept while a trace of the project refers to it (the `refs` given to
///   `put_media`). Deleting traces ([`crate::Eraser`]: by id, session, user or retention) and
///   clearing their payloads remove their references, and then every blob no reference names.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores `blobs` in `project` (those it does not hold yet) and records that each trace
    /// of `refs` refers to its hash. Refused whole, before anything is written, when a blob is
    /// over [`MAX_MEDIA_BYTES`], its hash is not 64 lowercase hex digits or its type is not
    /// the one its bytes show. Returns the bytes newly stored.
    async fn put_media(
        &self,
        project: &str,
        blobs: &[MediaBlob],
        refs: &[(TraceId, String)],
    ) -> Result<u64, StoreError>;

    /// The blob of `project` with this hash, if any. A malformed hash is refused.
    async fn get_media(&self, project: &str, hash: &str)
        -> Result<Option<StoredMedia>, StoreError>;

    /// How many blobs `project` holds and their bytes.
    async fn media_usage(&self, project: &str) -> Result<MediaUsage, StoreError>;
}

/// True for a SHA-256 as the references write it: 64 lowercase hex digits.
pub fn is_media_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses a malformed hash.
pub fn check_media_hash(hash: &str) -> Result<(), StoreError> {
    if is_media_hash(hash) {
        Ok(())
    } else {
        Err(StoreError::InvalidQuery(format!(
            "a media hash is 64 lowercase hex digits (SHA-256), got {} characters",
            hash.chars().count()
        )))
    }
}

/// Checks what [`MediaStore::put_media`] is given, before any write.
pub fn check_media(blobs: &[MediaBlob], refs: &[(TraceId, String)]) -> Result<(), StoreError> {
    for b in blobs {
        check_media_hash(&b.hash)?;
        if b.bytes.len() > MAX_MEDIA_BYTES {
            return Err(StoreError::InvalidQuery(format!(
                "media blob {} is {} bytes, over the {MAX_MEDIA_BYTES} allowed",
                b.hash,
                b.bytes.len()
            )));
        }
        if sniff(&b.bytes) != Some(b.mime.as_str()) {
            return Err(StoreError::InvalidQuery(format!(
                "media blob {} is declared {:?} but its bytes are not",
                b.hash, b.mime
            )));
        }
    }
    for (_, hash) in refs {
        check_media_hash(hash)?;
    }
    Ok(())
}
