//! `/api/v1/queues`: review queues, per project. A queue is a shared-state document
//! (`queue:{hex project}:{id}`) holding its definition and its items, taken from its source
//! when it is made or refreshed (at most [`MAX_ITEMS`]); what happened to each item is a
//! document of its own (`queue-item:{hex project}:{id}:{index}`), so reviewers working at once
//! never overwrite each other's results. A reviewer works on an item under a lease of the
//! shared state (`queue-claim:…`, [`CLAIM_TTL`]): taking it is atomic on every backend, so two
//! reviewers (on one server or several) never get the same item, and an item whose reviewer
//! went away comes back once the lease runs out. Scores go through the normal score store with
//! source `human` and the reviewer as `author`. Members review and make queues; viewers read.

use super::admin::json_body;
use super::error::{bad, ApiError};
use super::params::Params;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use spanlens_api::{
    ItemState, NextItem, QueueDetail, QueueInput, QueueItem, QueueList, QueueProgress, QueueSource,
    QueueSummary, ReviewAnswer, ReviewInput, ReviewQueue, ReviewerCount, ScoreDefinition,
    ViewInput,
};
use spanlens_core::evals::{Score, ScoreSource, ScoreType};
use spanlens_core::{SpanId, TraceId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Most queues one project keeps.
const MAX_QUEUES: usize = 100;
/// Most items one queue holds: a queue is work for people, and its document stays small.
pub(crate) const MAX_ITEMS: usize = 500;
/// Most score definitions of a queue, and labels of a categorical one.
const MAX_DEFINITIONS: usize = 20;
/// Longest name (of a queue, a score, a label), in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest reviewer's note, in characters.
const MAX_COMMENT_CHARS: usize = 4000;
/// Longest item label, in characters.
const MAX_LABEL_CHARS: usize = 200;
/// How long an item stays with the reviewer who took it.
const CLAIM_TTL: Duration = Duration::from_secs(10 * 60);
/// Failed scores read to find a queue's items (newest first).
const SCORES_READ: usize = 1000;

/// A queue as stored: its definition and its items.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredQueue {
    queue: ReviewQueue,
    items: Vec<StoredItem>,
}

/// One item as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct StoredItem {
    trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
    label: String,
}

/// What happened to an item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemResult {
    /// The item it is of (a result whose target no longer matches its place is ignored).
    trace_id: String,
    #[serde(default)]
    span_id: Option<String>,
    state: ItemState,
    by: String,
    at_ns: u64,
    #[serde(default)]
    score_ids: Vec<i64>,
}

impl ItemResult {
    fn of(&self, item: &StoredItem) -> bool {
        self.trace_id == item.trace_id && self.span_id == item.span_id
    }
}

/// The project as it appears in the queues' state keys: its hex (readable, and no project's
/// prefix matches another's since a colon follows) while short enough that every key stays
/// under the store's key limit; a longer name (up to 128 bytes) as `h` and 32 hex digits of its
/// SHA-256, which no hex form starts with.
fn hex_project(project: &str) -> String {
    if project.len() <= 32 {
        hex::encode(project)
    } else {
        use sha2::Digest;
        format!(
            "h{}",
            &hex::encode(sha2::Sha256::digest(project.as_bytes()))[..32]
        )
    }
}

/// The shared-state key prefix of `project`'s queues.
fn prefix(project: &str) -> String {
    format!("queue:{}:", hex_project(project))
}

fn queue_key(project: &str, id: &str) -> String {
    format!("{}{id}", prefix(project))
}

/// The prefix of a queue's item results.
fn item_prefix(project: &str, id: &str) -> String {
    format!("queue-item:{}:{id}:", hex_project(project))
}

fn item_key(project: &str, id: &str, index: usize) -> String {
    format!("{}{index:04}", item_prefix(project, id))
}

/// The lease name of an item's claim.
fn claim_name(project: &str, id: &str, index: usize) -> String {
    format!("queue-claim:{}:{id}:{index}", hex_project(project))
}

fn now_ns() -> u64 {
    crate::ingest::now().0
}

fn actor(caller: Option<&crate::auth::Caller>) -> String {
    caller.map_or_else(|| "local (auth off)".into(), |c| c.actor())
}

fn queue_id(id: &str) -> Result<&str, ApiError> {
    super::rows::doc_id(id, "queue_id", "queue")
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
}

/// `text` cut to `max` characters.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn check_name(what: &str, name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_NAME_CHARS
        || trimmed.chars().any(char::is_control)
    {
        return Err(bad(
            what,
            name,
            &format!("1 to {MAX_NAME_CHARS} characters, no control characters"),
        ));
    }
    Ok(trimmed.to_string())
}

/// Checks score definitions: unique names, a numeric one's range, a categorical one's labels.
fn check_definitions(defs: Vec<ScoreDefinition>) -> Result<Vec<ScoreDefinition>, ApiError> {
    if defs.is_empty() || defs.len() > MAX_DEFINITIONS {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("scores: give 1 to {MAX_DEFINITIONS} score definitions"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(defs.len());
    for d in defs {
        let name = check_name("scores.name", &d.name)?;
        if !seen.insert(name.to_lowercase()) {
            return Err(bad("scores.name", &name, "defined twice"));
        }
        let why = |w: &str| bad("scores", &name, w);
        match d.data_type {
            ScoreType::Numeric => {
                let (Some(min), Some(max)) = (d.min, d.max) else {
                    return Err(why("a numeric score needs `min` and `max`"));
                };
                if !(min.is_finite() && max.is_finite() && min < max) {
                    return Err(why("`min` and `max` must be finite numbers, min < max"));
                }
                if !d.labels.is_empty() {
                    return Err(why("a numeric score takes no `labels`"));
                }
            }
            ScoreType::Boolean => {
                if d.min.is_some() || d.max.is_some() || !d.labels.is_empty() {
                    return Err(why("a boolean score takes no `min`, `max` or `labels`"));
                }
            }
            ScoreType::Categorical => {
                if d.min.is_some() || d.max.is_some() {
                    return Err(why("a categorical score takes no `min` or `max`"));
                }
                if d.labels.is_empty() || d.labels.len() > MAX_DEFINITIONS {
                    return Err(why(&format!(
                        "a categorical score needs 1 to {MAX_DEFINITIONS} labels"
                    )));
                }
            }
        }
        let mut labels = Vec::with_capacity(d.labels.len());
        for l in &d.labels {
            let l = check_name("scores.labels", l)?;
            if labels.contains(&l) {
                return Err(bad("scores.labels", &l, "given twice"));
            }
            labels.push(l);
        }
        out.push(ScoreDefinition { name, labels, ..d });
    }
    Ok(out)
}

/// Checks a source: a filter the trace list accepts (as a saved view's), or a failed-score
/// rule naming a score the project has.
async fn check_source(
    st: &AppState,
    project: &str,
    source: QueueSource,
) -> Result<QueueSource, ApiError> {
    match source {
        QueueSource::Filter { query } => {
            let view = super::views::checked(ViewInput {
                name: "queue".into(),
                query,
                columns: Vec::new(),
            })?;
            Ok(QueueSource::Filter { query: view.query })
        }
        QueueSource::FailedScores {
            score,
            fail_at_most,
            fail_at_least,
            fail_labels,
        } => {
            let score = check_name("source.score", &score)?;
            if fail_at_most.is_none() && fail_at_least.is_none() && fail_labels.is_empty() {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "source: say which scores fail with fail_at_most, fail_at_least or \
                     fail_labels (a boolean's failure is fail_at_most: 0)"
                        .into(),
                ));
            }
            for (k, v) in [
                ("fail_at_most", fail_at_most),
                ("fail_at_least", fail_at_least),
            ] {
                if v.is_some_and(|v| !v.is_finite()) {
                    return Err(bad(k, "…", "a finite number"));
                }
            }
            let mut labels = Vec::new();
            for l in &fail_labels {
                labels.push(check_name("source.fail_labels", l)?);
            }
            let any = st
                .store
                .list_scores(&spanlens_store::ScoreQuery {
                    project: project.to_string(),
                    name: Some(score.clone()),
                    limit: Some(1),
                    ..Default::default()
                })
                .await?;
            if any.is_empty() {
                return Err(bad(
                    "source.score",
                    &score,
                    &format!("project {project:?} has no score of that name"),
                ));
            }
            Ok(QueueSource::FailedScores {
                score,
                fail_at_most,
                fail_at_least,
                fail_labels: labels,
            })
        }
    }
}

/// Whether a score fails by a failed-scores source's rule.
fn fails(s: &Score, at_most: Option<f64>, at_least: Option<f64>, labels: &[String]) -> bool {
    let by_value = s
        .value
        .is_some_and(|v| at_most.is_some_and(|m| v <= m) || at_least.is_some_and(|m| v >= m));
    let by_label = s.label.as_ref().is_some_and(|l| labels.contains(l));
    by_value || by_label
}

/// The items `source` yields now, at most `MAX_ITEMS + 1` (one more says there were more).
async fn gather(
    st: &AppState,
    project: &str,
    source: &QueueSource,
) -> Result<Vec<StoredItem>, ApiError> {
    let mut out = Vec::new();
    match source {
        QueueSource::Filter { query } => {
            let mut q = super::traces::list_query(&Params::parse(Some(query.clone()))?)?;
            q.project = project.to_string();
            q.limit = (MAX_ITEMS + 1) as u32;
            q.cursor = None;
            for t in st.store.list_traces(&q).await?.items {
                out.push(StoredItem {
                    trace_id: t.trace_id.to_hex(),
                    span_id: None,
                    label: cut(&t.name, MAX_LABEL_CHARS),
                });
            }
        }
        QueueSource::FailedScores {
            score,
            fail_at_most,
            fail_at_least,
            fail_labels,
        } => {
            let scores = st
                .store
                .list_scores(&spanlens_store::ScoreQuery {
                    project: project.to_string(),
                    name: Some(score.clone()),
                    limit: Some(SCORES_READ),
                    ..Default::default()
                })
                .await?;
            let mut seen = HashSet::new();
            for s in scores {
                let Some(trace) = s.trace_id else { continue };
                if !fails(&s, *fail_at_most, *fail_at_least, fail_labels) {
                    continue;
                }
                let item = StoredItem {
                    trace_id: trace.to_hex(),
                    span_id: s.span_id.map(|x| x.to_hex()),
                    label: String::new(),
                };
                if !seen.insert((item.trace_id.clone(), item.span_id.clone())) {
                    continue;
                }
                let shown = match (&s.label, s.value) {
                    (Some(l), _) => format!("{} = {l}", s.name),
                    (None, Some(v)) => format!("{} = {v}", s.name),
                    (None, None) => s.name.clone(),
                };
                let label = match &s.comment {
                    Some(c) if !c.trim().is_empty() => format!("{shown}: {c}"),
                    _ => shown,
                };
                out.push(StoredItem {
                    label: cut(&label, MAX_LABEL_CHARS),
                    ..item
                });
                if out.len() > MAX_ITEMS {
                    break;
                }
            }
        }
    }
    Ok(out)
}

async fn load_all(st: &AppState, project: &str) -> Result<Vec<StoredQueue>, ApiError> {
    let mut queues = Vec::new();
    for (key, doc) in st.store.list_state(&prefix(project)).await? {
        match serde_json::from_str::<StoredQueue>(&doc) {
            Ok(q) => queues.push(q),
            // One damaged document must not hide the others.
            Err(e) => tracing::error!(key, error = %e, "review queue unreadable; left out"),
        }
    }
    queues.sort_by_key(|q| q.queue.name.to_lowercase());
    Ok(queues)
}

async fn load(st: &AppState, project: &str, id: &str) -> Result<StoredQueue, ApiError> {
    let doc = st
        .store
        .load_state(&queue_key(project, id))
        .await?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no queue {id} in project {project:?}"),
            )
        })?;
    serde_json::from_str(&doc).map_err(|e| internal(&format!("queue {id} unreadable"), e))
}

async fn save(st: &AppState, project: &str, q: &StoredQueue) -> Result<(), ApiError> {
    let doc = serde_json::to_string(q).map_err(|e| internal("saving a queue", e))?;
    st.store
        .save_state(&queue_key(project, &q.queue.id), &doc)
        .await?;
    Ok(())
}

/// The results of a queue's items, by index (those that match their item).
async fn results(
    st: &AppState,
    project: &str,
    q: &StoredQueue,
) -> Result<HashMap<usize, ItemResult>, ApiError> {
    let pre = item_prefix(project, &q.queue.id);
    let mut out = HashMap::new();
    for (key, doc) in st.store.list_state(&pre).await? {
        let Some(index) = key.strip_prefix(&pre).and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        match serde_json::from_str::<ItemResult>(&doc) {
            Ok(r) if q.items.get(index).is_some_and(|i| r.of(i)) => {
                out.insert(index, r);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(key, error = %e, "queue item result unreadable; left out"),
        }
    }
    Ok(out)
}

async fn result_of(
    st: &AppState,
    project: &str,
    q: &StoredQueue,
    index: usize,
) -> Result<Option<ItemResult>, ApiError> {
    let Some(doc) = st
        .store
        .load_state(&item_key(project, &q.queue.id, index))
        .await?
    else {
        return Ok(None);
    };
    let r: ItemResult = serde_json::from_str(&doc)
        .map_err(|e| internal(&format!("queue item {index} unreadable"), e))?;
    Ok(q.items.get(index).filter(|i| r.of(i)).map(|_| r))
}

fn progress(total: usize, results: &HashMap<usize, ItemResult>) -> QueueProgress {
    let mut by: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let (mut done, mut skipped) = (0, 0);
    for r in results.values() {
        let e = by.entry(r.by.as_str()).or_default();
        match r.state {
            ItemState::Done => {
                done += 1;
                e.0 += 1;
            }
            ItemState::Skipped => {
                skipped += 1;
                e.1 += 1;
            }
            ItemState::Pending => {}
        }
    }
    let mut reviewers: Vec<ReviewerCount> = by
        .into_iter()
        .map(|(r, (done, skipped))| ReviewerCount {
            reviewer: r.to_string(),
            done,
            skipped,
        })
        .collect();
    reviewers.sort_by(|a, b| b.done.cmp(&a.done).then(a.reviewer.cmp(&b.reviewer)));
    QueueProgress {
        total,
        done,
        skipped,
        pending: total.saturating_sub(done + skipped),
        reviewers,
    }
}

fn item_view(index: usize, item: &StoredItem, result: Option<&ItemResult>) -> QueueItem {
    QueueItem {
        index,
        trace_id: item.trace_id.clone(),
        span_id: item.span_id.clone(),
        label: item.label.clone(),
        state: result.map_or(ItemState::Pending, |r| r.state),
        by: result.map(|r| r.by.clone()),
        at_ns: result.map(|r| r.at_ns),
    }
}

/// `GET /api/v1/queues`: the project's queues with their progress.
pub(super) async fn list_queues(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<QueueList>, ApiError> {
    let project = Params::parse(q)?.project();
    let mut queues = Vec::new();
    for sq in load_all(&st, &project).await? {
        let r = results(&st, &project, &sq).await?;
        queues.push(QueueSummary {
            progress: progress(sq.items.len(), &r),
            queue: sq.queue,
        });
    }
    Ok(Json(QueueList { project, queues }))
}

/// `POST /api/v1/queues`: makes a queue and takes its items from its source (201).
pub(super) async fn create_queue(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<QueueSummary>), ApiError> {
    let project = Params::parse(q)?.project();
    let input: QueueInput = json_body(&st, &headers, body, 64 * 1024).await?;
    let name = check_name("name", &input.name)?;
    let scores = check_definitions(input.scores)?;
    let source = check_source(&st, &project, input.source).await?;
    let existing = load_all(&st, &project).await?;
    if existing.len() >= MAX_QUEUES {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "project {project:?} has {MAX_QUEUES} queues, the most it may keep; delete one first"
            ),
        ));
    }
    if existing
        .iter()
        .any(|q| q.queue.name.eq_ignore_ascii_case(&name))
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("a queue named {name:?} exists"),
        ));
    }
    let mut items = gather(&st, &project, &source).await?;
    let capped = items.len() > MAX_ITEMS;
    items.truncate(MAX_ITEMS);
    let now = now_ns();
    let sq = StoredQueue {
        queue: ReviewQueue {
            id: super::rows::new_id()?,
            name,
            source,
            scores,
            created_by: actor(caller.as_deref()),
            created_ns: now,
            refreshed_ns: now,
            capped,
        },
        items,
    };
    save(&st, &project, &sq).await?;
    Ok((
        StatusCode::CREATED,
        Json(QueueSummary {
            progress: progress(sq.items.len(), &HashMap::new()),
            queue: sq.queue,
        }),
    ))
}

/// `GET /api/v1/queues/{queue_id}`: a queue, its progress and its items.
pub(super) async fn get_queue(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<QueueDetail>, ApiError> {
    let id = queue_id(&id)?;
    let project = Params::parse(q)?.project();
    let sq = load(&st, &project, id).await?;
    let r = results(&st, &project, &sq).await?;
    let items = sq
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| item_view(i, item, r.get(&i)))
        .collect();
    Ok(Json(QueueDetail {
        progress: progress(sq.items.len(), &r),
        queue: sq.queue,
        items,
    }))
}

/// `DELETE /api/v1/queues/{queue_id}`: deletes a queue and its items' results (204); the
/// scores given stay.
pub(super) async fn delete_queue(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let id = queue_id(&id)?;
    let project = Params::parse(q)?.project();
    load(&st, &project, id).await?;
    st.store.delete_state(&queue_key(&project, id)).await?;
    for (key, _) in st.store.list_state(&item_prefix(&project, id)).await? {
        st.store.delete_state(&key).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/queues/{queue_id}/refresh`: reads the source again and adds the items it
/// yields that the queue lacks (up to the cap); results of items kept stay.
pub(super) async fn refresh_queue(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<QueueSummary>, ApiError> {
    let id = queue_id(&id)?;
    let project = Params::parse(q)?.project();
    // One refresh of a queue at a time, on any server: two would each append to the same
    // old list and the later save would drop the other's items.
    let lock = format!("queue-refresh:{}:{id}", hex_project(&project));
    let holder = super::rows::new_id()?;
    if !st
        .store
        .acquire_lease(&lock, &holder, Duration::from_secs(60))
        .await?
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("queue {id} is being refreshed; try again in a moment"),
        ));
    }
    let outcome = async {
        let mut sq = load(&st, &project, id).await?;
        let have: HashSet<(String, Option<String>)> = sq
            .items
            .iter()
            .map(|i| (i.trace_id.clone(), i.span_id.clone()))
            .collect();
        let mut capped = false;
        for item in gather(&st, &project, &sq.queue.source).await? {
            if have.contains(&(item.trace_id.clone(), item.span_id.clone())) {
                continue;
            }
            if sq.items.len() >= MAX_ITEMS {
                capped = true;
                break;
            }
            sq.items.push(item);
        }
        sq.queue.capped = capped;
        sq.queue.refreshed_ns = now_ns();
        save(&st, &project, &sq).await?;
        let r = results(&st, &project, &sq).await?;
        Ok::<_, ApiError>(QueueSummary {
            progress: progress(sq.items.len(), &r),
            queue: sq.queue,
        })
    }
    .await;
    if let Err(e) = st.store.release_lease(&lock, &holder).await {
        tracing::warn!(error = %e, "releasing a queue's refresh lease");
    }
    outcome.map(Json)
}

/// `POST /api/v1/queues/{queue_id}/next?from=N&dir=next|prev`: claims for the caller the next
/// item nobody has done or skipped and nobody else holds, searching after `from` (before it
/// with `dir=prev`) and around; the caller's claim on `from` is given up first, so moving on
/// hands an item back to the others.
pub(super) async fn next_item(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<NextItem>, ApiError> {
    let id = queue_id(&id)?;
    let p = Params::parse(q)?;
    let project = p.project();
    let from = p.number::<usize>("from")?;
    let backwards = match p.get(&["dir"]) {
        None | Some("next") => false,
        Some("prev") => true,
        Some(v) => return Err(bad("dir", v, "use next or prev")),
    };
    let reviewer = actor(caller.as_deref());
    let sq = load(&st, &project, id).await?;
    let n = sq.items.len();
    if let Some(f) = from {
        if f >= n {
            return Err(bad(
                "from",
                &f.to_string(),
                &format!("the queue has {n} items"),
            ));
        }
        st.store
            .release_lease(&claim_name(&project, id, f), &reviewer)
            .await?;
    }
    let r = results(&st, &project, &sq).await?;
    let order: Vec<usize> = match (from, backwards) {
        (None, _) => (0..n).collect(),
        (Some(f), false) => (f + 1..n).chain(0..=f).collect(),
        (Some(f), true) => (0..f).rev().chain((f..n).rev()).collect(),
    };
    for i in order {
        if r.contains_key(&i) {
            continue;
        }
        if st
            .store
            .acquire_lease(&claim_name(&project, id, i), &reviewer, CLAIM_TTL)
            .await?
        {
            return Ok(Json(NextItem {
                item: Some(item_view(i, &sq.items[i], None)),
                claimed_until_ns: Some(now_ns().saturating_add(CLAIM_TTL.as_nanos() as u64)),
                progress: progress(n, &r),
            }));
        }
    }
    Ok(Json(NextItem {
        item: None,
        claimed_until_ns: None,
        progress: progress(n, &r),
    }))
}

/// Checks a review's scores against the queue's definitions and makes the scores to store.
fn review_scores(
    defs: &[ScoreDefinition],
    input: &ReviewInput,
    item: &StoredItem,
    reviewer: &str,
) -> Result<Vec<Score>, ApiError> {
    if input.skip {
        if !input.scores.is_empty() {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "scores: a skip gives no scores".into(),
            ));
        }
        return Ok(Vec::new());
    }
    if input.scores.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "scores: give at least one score, or skip the item with \"skip\": true".into(),
        ));
    }
    let comment = match input.comment.as_deref().map(str::trim) {
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => {
            return Err(bad(
                "comment",
                "…",
                &format!("longer than {MAX_COMMENT_CHARS} characters"),
            ))
        }
        Some("") | None => None,
        Some(c) => Some(c.to_string()),
    };
    let trace_id = TraceId::from_hex(&item.trace_id).map_err(|e| internal("queue item", e))?;
    let span_id = match &item.span_id {
        Some(s) => Some(SpanId::from_hex(s).map_err(|e| internal("queue item", e))?),
        None => None,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(input.scores.len());
    for s in &input.scores {
        let Some(d) = defs.iter().find(|d| d.name == s.name) else {
            let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(bad(
                "scores.name",
                &s.name,
                &format!("not one of this queue's scores ({})", names.join(", ")),
            ));
        };
        if !seen.insert(&s.name) {
            return Err(bad("scores.name", &s.name, "given twice"));
        }
        let why = |w: String| bad("scores", &s.name, &w);
        let (value, label) = match d.data_type {
            ScoreType::Numeric => {
                let (min, max) = (d.min.unwrap_or(f64::MIN), d.max.unwrap_or(f64::MAX));
                match (s.value, &s.label) {
                    (Some(v), None) if v.is_finite() && v >= min && v <= max => (Some(v), None),
                    _ => return Err(why(format!("a `value` from {min} to {max}"))),
                }
            }
            ScoreType::Boolean => match (s.value, &s.label) {
                (Some(v), None) if v == 0.0 || v == 1.0 => (Some(v), None),
                _ => return Err(why("a `value` of 1 (yes) or 0 (no)".into())),
            },
            ScoreType::Categorical => match (s.value, &s.label) {
                (None, Some(l)) if d.labels.contains(l) => (None, Some(l.clone())),
                _ => return Err(why(format!("a `label` of {}", d.labels.join(", ")))),
            },
        };
        out.push(Score {
            id: None,
            trace_id: Some(trace_id),
            span_id,
            session_id: None,
            name: d.name.clone(),
            data_type: d.data_type,
            value,
            label,
            source: ScoreSource::Human,
            comment: comment.clone(),
            author: Some(cut(reviewer, spanlens_core::evals::MAX_AUTHOR_CHARS - 1)),
            created_ns: None,
        });
    }
    Ok(out)
}

/// `POST /api/v1/queues/{queue_id}/items/{item}`: scores (or skips) an item as the caller; the
/// item must not be done and not held by another reviewer. The scores are stored with source
/// `human` and the caller as author.
pub(super) async fn review_item(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path((id, index)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReviewAnswer>, ApiError> {
    let id = queue_id(&id)?;
    let project = Params::parse(q)?.project();
    let input: ReviewInput = json_body(&st, &headers, body, 64 * 1024).await?;
    let sq = load(&st, &project, id).await?;
    let index: usize = index
        .parse()
        .map_err(|_| bad("item", &index, "an item's index in the queue, from 0"))?;
    let Some(item) = sq.items.get(index) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("queue {id} has no item {index} (it has {})", sq.items.len()),
        ));
    };
    let reviewer = actor(caller.as_deref());
    let scores = review_scores(&sq.queue.scores, &input, item, &reviewer)?;
    let claim = claim_name(&project, id, index);
    if !st.store.acquire_lease(&claim, &reviewer, CLAIM_TTL).await? {
        let holder = st
            .store
            .load_state(&spanlens_store::Lease::key(&claim))
            .await?
            .and_then(|d| serde_json::from_str::<spanlens_store::Lease>(&d).ok())
            .map_or_else(|| "another reviewer".to_string(), |l| l.holder);
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("item {index} is being reviewed by {holder}; take another with /next"),
        ));
    }
    // Read under the claim: whoever did it before held the claim while doing so.
    if let Some(r) = result_of(&st, &project, &sq, index).await? {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "item {index} is already {} by {}",
                match r.state {
                    ItemState::Skipped => "skipped",
                    _ => "done",
                },
                r.by
            ),
        ));
    }
    let mut scores = scores;
    if let Some(policy) = st.redactions().for_project(&project) {
        for s in &mut scores {
            policy.apply_score(s);
        }
    }
    let score_ids = if scores.is_empty() {
        Vec::new()
    } else {
        st.store.add_scores(&project, &scores).await?
    };
    let result = ItemResult {
        trace_id: item.trace_id.clone(),
        span_id: item.span_id.clone(),
        state: if input.skip {
            ItemState::Skipped
        } else {
            ItemState::Done
        },
        by: reviewer.clone(),
        at_ns: now_ns(),
        score_ids: score_ids.clone(),
    };
    let doc = serde_json::to_string(&result).map_err(|e| internal("saving a result", e))?;
    st.store
        .save_state(&item_key(&project, id, index), &doc)
        .await?;
    st.store.release_lease(&claim, &reviewer).await?;
    let r = results(&st, &project, &sq).await?;
    Ok(Json(ReviewAnswer {
        item: item_view(index, item, Some(&result)),
        score_ids,
        progress: progress(sq.items.len(), &r),
    }))
}
