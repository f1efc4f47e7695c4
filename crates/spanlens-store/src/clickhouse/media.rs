//! Media blobs on ClickHouse: `media_blobs` (a `ReplacingMergeTree` keyed by project and hash)
//! and `media_refs` (which trace refers to which hash).
//!
//! Without transactions, a put inserts its references first and then the blobs the project
//! lacks; two puts racing may both insert one blob (merges keep one; reads take one row per
//! hash). An erasure racing with a put that found the blob stored may free it just before the
//! put's reference lands: the span then shows the reference without its picture.

use super::rowbinary::RowBinary;
use super::rowread::RowReader;
use super::{ch_error, sql, ClickHouseStore};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::store::{check_media, check_media_hash, MediaStore, MediaUsage, StoredMedia};
use async_trait::async_trait;
use spanlens_core::media::MediaBlob;
use spanlens_core::TraceId;
use std::collections::BTreeSet;

/// `('a', 'b', …)` of strings for `IN`; `None` when empty.
fn string_set<S: AsRef<str>>(v: &[S]) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    let items: Vec<String> = v.iter().map(|s| sql::string(s.as_ref())).collect();
    Some(format!("({})", items.join(", ")))
}

impl ClickHouseStore {
    /// The hashes a query of one `String` column returns, distinct.
    async fn hash_rows(&self, query: &str, op: &'static str) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .query(&format!("{query} FORMAT RowBinary"), &[])
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        let mut found = BTreeSet::new();
        while !r.is_empty() {
            found.insert(r.string()?);
        }
        Ok(found.into_iter().collect())
    }

    /// Removes the references of `traces` of `project`, then each blob they named that no
    /// reference names any more.
    pub(super) async fn forget_media(
        &self,
        project: &str,
        traces: &[[u8; 16]],
    ) -> Result<(), StoreError> {
        let Some(set) = sql::byte_set(traces) else {
            return Ok(());
        };
        let op = "freeing media";
        let p = sql::string(project);
        let named = self
            .hash_rows(
                &format!(
                    "SELECT DISTINCT hash FROM media_refs WHERE project = {p} AND trace_id IN {set}"
                ),
                op,
            )
            .await?;
        let Some(hashes) = string_set(&named) else {
            return Ok(());
        };
        self.client
            .query(
                &format!(
                    "DELETE FROM {} WHERE project = {p} AND trace_id IN {set}",
                    self.delete_target("media_refs")
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let kept: BTreeSet<String> = self
            .hash_rows(
                &format!(
                    "SELECT DISTINCT hash FROM media_refs WHERE project = {p} AND hash IN {hashes}"
                ),
                op,
            )
            .await?
            .into_iter()
            .collect();
        let bare: Vec<&String> = named.iter().filter(|h| !kept.contains(*h)).collect();
        if let Some(bare) = string_set(&bare) {
            self.client
                .query(
                    &format!(
                        "DELETE FROM {} WHERE project = {p} AND hash IN {bare}",
                        self.delete_target("media_blobs")
                    ),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl MediaStore for ClickHouseStore {
    async fn put_media(
        &self,
        project: &str,
        blobs: &[MediaBlob],
        refs: &[(TraceId, String)],
    ) -> Result<u64, StoreError> {
        check_media(blobs, refs)?;
        let project = project_name(project);
        let p = sql::string(&project);
        let op = "storing media";
        if !refs.is_empty() {
            let mut out = RowBinary::new();
            for (trace, hash) in refs {
                out.str(&project).fixed(&trace.0).str(hash);
            }
            self.client
                .insert(
                    "INSERT INTO media_refs (project, trace_id, hash) FORMAT RowBinary",
                    &out.finish(),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
        }
        let wanted: Vec<&str> = blobs.iter().map(|b| b.hash.as_str()).collect();
        let Some(set) = string_set(&wanted) else {
            return Ok(0);
        };
        let held: BTreeSet<String> = self
            .hash_rows(
                &format!(
                    "SELECT DISTINCT hash FROM media_blobs WHERE project = {p} AND hash IN {set}"
                ),
                op,
            )
            .await?
            .into_iter()
            .collect();
        let mut stored = 0u64;
        // One insert per blob: a batch of large blobs is not held twice in one request.
        for b in blobs.iter().filter(|b| !held.contains(&b.hash)) {
            let mut out = RowBinary::with_capacity(b.bytes.len() + 256);
            out.str(&project)
                .str(&b.hash)
                .str(&b.mime)
                .bytes(&b.bytes)
                .u64(b.bytes.len() as u64);
            self.client
                .insert(
                    "INSERT INTO media_blobs (project, hash, mime, bytes, size) FORMAT RowBinary",
                    &out.finish(),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
            stored += b.bytes.len() as u64;
        }
        Ok(stored)
    }

    async fn get_media(
        &self,
        project: &str,
        hash: &str,
    ) -> Result<Option<StoredMedia>, StoreError> {
        check_media_hash(hash)?;
        let p = sql::string(&project_name(project));
        let op = "reading media";
        let out = self
            .client
            .query(
                &format!(
                    "SELECT mime, bytes FROM media_blobs WHERE project = {p} AND hash = {} \
                     LIMIT 1 FORMAT RowBinary",
                    sql::string(hash)
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        if r.is_empty() {
            return Ok(None);
        }
        let mime = r.string()?;
        let bytes = r.bytes()?.to_vec();
        Ok(Some(StoredMedia { mime, bytes }))
    }

    async fn media_usage(&self, project: &str) -> Result<MediaUsage, StoreError> {
        let p = sql::string(&project_name(project));
        let op = "reading media usage";
        // One row per hash: two racing puts may have stored a blob twice until merged.
        let out = self
            .client
            .query(
                &format!(
                    "SELECT count(), sum(s) FROM (SELECT hash, any(size) AS s FROM media_blobs \
                     WHERE project = {p} GROUP BY hash) FORMAT RowBinary"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        Ok(MediaUsage {
            blobs: r.u64()?,
            bytes: r.u64()?,
        })
    }
}
