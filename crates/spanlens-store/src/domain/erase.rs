//! Erasing every trace of a session or a user through the traits: the trace list narrowed to
//! the owner gives a batch of ids, [`Eraser::delete_traces`] removes it in one transaction, and
//! the next batch is read afresh, so neither the store nor the caller holds more than a batch.

use crate::error::StoreError;
use crate::store::{Erased, Eraser, TraceReader, ERASE_BATCH};
use crate::types::ListQuery;

/// Whose traces to erase.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// Every trace of this session.
    Session(&'a str),
    /// Every trace of this user.
    User(&'a str),
}

impl Owner<'_> {
    /// The id, refused when empty: an empty session or user names every trace without one.
    fn id(&self) -> Result<&str, StoreError> {
        let (what, id) = match self {
            Owner::Session(s) => ("session", *s),
            Owner::User(u) => ("user", *u),
        };
        if id.is_empty() {
            return Err(StoreError::InvalidQuery(format!(
                "an empty {what} id would name every trace without a {what}; name one"
            )));
        }
        Ok(id)
    }
}

/// Checks an owner id before any work (also for backends that erase by their own means).
pub fn check_owner(owner: Owner<'_>) -> Result<(), StoreError> {
    owner.id().map(drop)
}

/// Deletes every trace of `owner` in `project`, [`ERASE_BATCH`] traces per transaction.
pub async fn delete_owned<S: TraceReader + Eraser + ?Sized>(
    store: &S,
    project: &str,
    owner: Owner<'_>,
) -> Result<Erased, StoreError> {
    let id = owner.id()?.to_string();
    let mut q = ListQuery::new(project);
    q.limit = ERASE_BATCH as u32;
    match owner {
        Owner::Session(_) => q.filter.session_id = Some(id),
        Owner::User(_) => q.filter.user_id = Some(id),
    }
    let mut total = Erased::default();
    loop {
        let page = store.list_traces(&q).await?;
        if page.items.is_empty() {
            return Ok(total);
        }
        let ids: Vec<_> = page.items.iter().map(|t| t.trace_id).collect();
        let done = store.delete_traces(project, &ids).await?;
        if done.traces == 0 {
            // Listed but not deletable: stop rather than read the same page forever.
            return Err(StoreError::Corrupt {
                table: "traces",
                reason: format!(
                    "{} traces listed for deletion could not be deleted",
                    ids.len()
                ),
            });
        }
        total.add(done);
    }
}

/// The steps each store erases with: a batch of traces, the scores given to a session itself,
/// one expiry step. [`Eraser`] on top of them is the same for every store.
#[async_trait::async_trait]
pub trait StepEraser: TraceReader + Send + Sync {
    /// Deletes `ids` (at most [`ERASE_BATCH`]) of `project`.
    async fn delete_batch(
        &self,
        project: &str,
        ids: &[spanlens_core::TraceId],
    ) -> Result<Erased, StoreError>;

    /// Deletes the scores attached to the session itself (not to its traces); how many.
    async fn delete_session_scores(&self, project: &str, session: &str) -> Result<u64, StoreError>;

    /// One step of [`Eraser::expire`], `limit` already checked and clamped.
    async fn expire_step(
        &self,
        project: &str,
        rule: crate::store::Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError>;
}

#[async_trait::async_trait]
impl<S: StepEraser> Eraser for S {
    async fn delete_traces(
        &self,
        project: &str,
        traces: &[spanlens_core::TraceId],
    ) -> Result<Erased, StoreError> {
        let mut total = Erased::default();
        for ids in traces.chunks(ERASE_BATCH) {
            total.add(self.delete_batch(project, ids).await?);
        }
        Ok(total)
    }

    async fn delete_session(&self, project: &str, session_id: &str) -> Result<Erased, StoreError> {
        let mut total = delete_owned(self, project, Owner::Session(session_id)).await?;
        total.scores += self.delete_session_scores(project, session_id).await?;
        Ok(total)
    }

    async fn delete_user(&self, project: &str, user_id: &str) -> Result<Erased, StoreError> {
        delete_owned(self, project, Owner::User(user_id)).await
    }

    async fn expire(
        &self,
        project: &str,
        rule: crate::store::Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        if limit == 0 {
            return Ok(Erased::default());
        }
        self.expire_step(project, rule, limit.min(crate::store::MAX_EXPIRE_LIMIT))
            .await
    }
}
