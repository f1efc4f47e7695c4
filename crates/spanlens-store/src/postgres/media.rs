//! Media blobs on PostgreSQL: `media_blobs` (one row per project and hash) and `media_refs`
//! (which trace refers to which hash).
//!
//! Storing and freeing both take the project's media advisory lock for their transaction, so an
//! erasure cannot free a blob between a put seeing it stored and the put's reference to it.

use super::{db, PostgresStore};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::store::{check_media, check_media_hash, MediaStore, MediaUsage, StoredMedia};
use async_trait::async_trait;
use spanlens_core::media::MediaBlob;
use spanlens_core::TraceId;
use tokio_postgres::Transaction;

/// Takes the media lock of `project` until the transaction ends.
async fn lock_media(tx: &Transaction<'_>, project: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('spanlens-media:' || $1, 0))",
        &[&project],
    )
    .await
    .map(drop)
    .map_err(db("locking media"))
}

/// Removes the references of `traces` of `project`, then each blob they named that no
/// reference names any more, inside the caller's transaction.
pub async fn forget(
    tx: &Transaction<'_>,
    project: &str,
    traces: &[Vec<u8>],
) -> Result<(), StoreError> {
    if traces.is_empty() {
        return Ok(());
    }
    let e = db("freeing media");
    lock_media(tx, project).await?;
    let hashes: Vec<String> = tx
        .query(
            "DELETE FROM media_refs WHERE project = $1 AND trace_id = ANY($2) RETURNING hash",
            &[&project, &traces],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if hashes.is_empty() {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM media_blobs b WHERE b.project = $1 AND b.hash = ANY($2) AND NOT EXISTS \
         (SELECT 1 FROM media_refs r WHERE r.project = $1 AND r.hash = b.hash)",
        &[&project, &hashes],
    )
    .await
    .map_err(&e)?;
    Ok(())
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn put_media(
        &self,
        project: &str,
        blobs: &[MediaBlob],
        refs: &[(TraceId, String)],
    ) -> Result<u64, StoreError> {
        check_media(blobs, refs)?;
        if blobs.is_empty() && refs.is_empty() {
            return Ok(0);
        }
        let project = project_name(project);
        let e = db("storing media");
        let mut client = self.client("storing media").await?;
        let tx = client.transaction().await.map_err(&e)?;
        lock_media(&tx, &project).await?;
        for (trace, hash) in refs {
            let trace = trace.0.to_vec();
            tx.execute(
                "INSERT INTO media_refs (project, trace_id, hash) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&project, &trace, hash],
            )
            .await
            .map_err(&e)?;
        }
        let now = super::schema::now_ns();
        let mut stored = 0u64;
        for b in blobs {
            let size = b.bytes.len() as i64;
            let added = tx
                .execute(
                    "INSERT INTO media_blobs (project, hash, mime, bytes, size, created_ns) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&project, &b.hash, &b.mime, &b.bytes, &size, &now],
                )
                .await
                .map_err(&e)?;
            if added > 0 {
                stored += b.bytes.len() as u64;
            }
        }
        tx.commit().await.map_err(&e)?;
        Ok(stored)
    }

    async fn get_media(
        &self,
        project: &str,
        hash: &str,
    ) -> Result<Option<StoredMedia>, StoreError> {
        check_media_hash(hash)?;
        let project = project_name(project);
        let client = self.client("reading media").await?;
        let row = client
            .query_opt(
                "SELECT mime, bytes FROM media_blobs WHERE project = $1 AND hash = $2",
                &[&project, &hash],
            )
            .await
            .map_err(db("reading media"))?;
        Ok(row.map(|r| StoredMedia {
            mime: r.get(0),
            bytes: r.get(1),
        }))
    }

    async fn media_usage(&self, project: &str) -> Result<MediaUsage, StoreError> {
        let project = project_name(project);
        let client = self.client("reading media usage").await?;
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::BIGINT FROM media_blobs WHERE project = $1",
                &[&project],
            )
            .await
            .map_err(db("reading media usage"))?;
        Ok(MediaUsage {
            blobs: row.get::<_, i64>(0).max(0) as u64,
            bytes: row.get::<_, i64>(1).max(0) as u64,
        })
    }
}
