//! Who may call the server: with `--auth required`, every data route needs an API key with the
//! scope the route asks for, and the key's project is the only one the call can touch.
//!
//! Keys are read from the store (`spanlens_auth::Directory`) and kept here for [`CACHE_TTL`],
//! so a key revoked through another server on the same store is refused within that time (at
//! once through this one). When each key was last accepted is kept in memory and saved every
//! [`USE_FLUSH`].

use spanlens_auth::{Account, ApiKey, Credential, Directory, Scope, Session};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a key read from the store is trusted before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// How often the last-use times are saved.
pub const USE_FLUSH: Duration = Duration::from_secs(60);
/// Keys (and unknown ids) remembered at once; past it the cache starts over.
const CACHE_CAP: usize = 10_000;
/// How long a session or account read from the store is trusted (a sign-out or role change
/// through another server takes effect within it).
pub const SESSION_TTL: Duration = Duration::from_secs(10);
/// The window failed sign-ins are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Failed sign-ins for one account name in the window before it must wait.
pub const MAX_FAILURES_PER_NAME: usize = 5;
/// Failed sign-ins from one client address in the window before it must wait (behind a proxy
/// every client shares the proxy's address, hence the higher bound).
pub const MAX_FAILURES_PER_PEER: usize = 50;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn failure_keys(name: &str, peer: Option<std::net::IpAddr>) -> Vec<(String, usize)> {
    let mut keys = vec![(format!("name:{name}"), MAX_FAILURES_PER_NAME)];
    if let Some(ip) = peer {
        keys.push((format!("peer:{ip}"), MAX_FAILURES_PER_PEER));
    }
    keys
}

/// Whether calls need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Anyone who reaches the server may do anything: allowed only on loopback.
    #[default]
    Off,
    /// Every data route needs a key.
    Required,
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<AuthMode, String> {
        match s {
            "off" => Ok(AuthMode::Off),
            "required" => Ok(AuthMode::Required),
            other => Err(format!("--auth {other:?}: use required or off")),
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// 401: no key sent.
    #[error("this server needs an API key or a sign-in: send `Authorization: Bearer slk_…` (or `x-api-key: slk_…`); an admin makes one with `spanlens keys create`")]
    Missing,
    /// 401: a key that is not one of this server's, or revoked.
    #[error("the API key was not accepted: it is malformed, unknown to this server, or revoked")]
    NotAccepted,
    /// 403: the key lacks the scope.
    #[error("key {prefix} has scope {has}; this needs {needs}")]
    Scope {
        /// The key's prefix.
        prefix: String,
        /// Its scopes.
        has: String,
        /// The scope needed.
        needs: Scope,
    },
    /// 403: the call names another project than the key's.
    #[error("key {prefix} belongs to project {own:?} and cannot reach project {asked:?}")]
    Project {
        /// The key's prefix.
        prefix: String,
        /// The key's project.
        own: String,
        /// The project asked for.
        asked: String,
    },
    /// 401: a session cookie that is unknown or expired.
    #[error("your sign-in has expired or ended: sign in again")]
    SignedOut,
    /// 403: a state-changing request of a session without its CSRF token.
    #[error("missing or wrong x-csrf-token for this session (reload the page)")]
    Csrf,
    /// 403: the account has no role allowing this in the project.
    #[error("account {account:?} has no role allowing {needs} in project {project:?}")]
    Role {
        /// The account.
        account: String,
        /// The scope needed.
        needs: Scope,
        /// The project.
        project: String,
    },
    /// 503: the keys could not be read.
    #[error("the API keys cannot be read now: {0}")]
    Unavailable(String),
}

impl Denied {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Missing | Denied::NotAccepted | Denied::SignedOut => 401,
            Denied::Scope { .. } | Denied::Project { .. } | Denied::Csrf | Denied::Role { .. } => {
                403
            }
            Denied::Unavailable(_) => 503,
        }
    }

    /// The gRPC status.
    pub fn grpc(&self) -> tonic::Status {
        let message = self.to_string();
        match self.status() {
            401 => tonic::Status::unauthenticated(message),
            403 => tonic::Status::permission_denied(message),
            _ => tonic::Status::unavailable(message),
        }
    }

    /// Refused for naming `asked` rather than `key`'s project.
    pub fn project(key: &ApiKey, asked: &str) -> Denied {
        Denied::Project {
            prefix: key.prefix(),
            own: key.project.clone(),
            asked: asked.chars().take(100).collect(),
        }
    }
}

/// Documents read from the store (`None`: there is none), each trusted for a while.
struct TtlCache<V> {
    map: Mutex<HashMap<String, (Option<V>, Instant)>>,
    ttl: Duration,
}

impl<V: Clone> TtlCache<V> {
    fn new(ttl: Duration) -> TtlCache<V> {
        TtlCache {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// What was read for `key`, while it is still trusted (`Some(None)`: known to be absent).
    fn get(&self, key: &str) -> Option<Option<V>> {
        lock(&self.map)
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, key: &str, v: Option<V>) {
        let mut map = lock(&self.map);
        if map.len() >= CACHE_CAP {
            map.clear();
        }
        map.insert(key.to_string(), (v, Instant::now()));
    }

    fn remove(&self, key: &str) {
        lock(&self.map).remove(key);
    }
}

/// The server's keys and mode.
pub struct Auth {
    mode: AuthMode,
    directory: Option<Directory>,
    /// Key id → the key.
    keys: TtlCache<Arc<ApiKey>>,
    /// Key id → when it was last accepted, not yet saved.
    used: Mutex<HashMap<String, i64>>,
    /// Session token → the session.
    sessions: TtlCache<Session>,
    /// Account name → the account.
    accounts: TtlCache<Arc<Account>>,
    /// Recent failed sign-ins, by account name and by client address.
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({:?})", self.mode)
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth::off()
    }
}

impl Auth {
    /// No keys needed.
    pub fn off() -> Auth {
        Auth {
            mode: AuthMode::Off,
            directory: None,
            keys: TtlCache::new(CACHE_TTL),
            used: Mutex::new(HashMap::new()),
            sessions: TtlCache::new(SESSION_TTL),
            accounts: TtlCache::new(SESSION_TTL),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `mode` over the keys of `directory`.
    pub fn new(mode: AuthMode, directory: Directory) -> Auth {
        Auth {
            mode,
            directory: Some(directory),
            ..Auth::off()
        }
    }

    /// Whether calls need a key.
    pub fn required(&self) -> bool {
        self.mode == AuthMode::Required
    }

    /// The keys, when the server has a store to keep them in.
    pub fn directory(&self) -> Option<&Directory> {
        self.directory.as_ref()
    }

    /// The key behind `credential`, from the cache or the store.
    async fn key(&self, credential: &Credential) -> Result<Option<Arc<ApiKey>>, Denied> {
        let key = match self.keys.get(&credential.id) {
            Some(k) => k,
            None => {
                let Some(dir) = &self.directory else {
                    return Ok(None);
                };
                let read = dir
                    .get(&credential.id)
                    .await
                    .map_err(|e| Denied::Unavailable(e.to_string()))?
                    .map(Arc::new);
                self.keys.put(&credential.id, read.clone());
                read
            }
        };
        Ok(key.filter(|k| k.revoked_ns.is_none() && k.proven_by(credential)))
    }

    /// Checks a call that presents `credential` (`None`: none sent; `Some(None)`: something
    /// that is not a key) and needs `needs`. Auth off: `Ok(None)`, anything goes. Otherwise
    /// the key, which decides the call's project.
    pub async fn check(
        &self,
        credential: Option<Option<Credential>>,
        needs: Scope,
    ) -> Result<Option<Arc<ApiKey>>, Denied> {
        if !self.required() {
            return Ok(None);
        }
        let credential = credential
            .ok_or(Denied::Missing)?
            .ok_or(Denied::NotAccepted)?;
        let key = self.key(&credential).await?.ok_or(Denied::NotAccepted)?;
        if !needs.allowed_by(&key.scopes) {
            return Err(Denied::Scope {
                prefix: key.prefix(),
                has: key
                    .scopes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join("+"),
                needs,
            });
        }
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.id.clone(), spanlens_auth::now_ns());
        Ok(Some(key))
    }

    /// The live session of a cookie's token (cached for [`SESSION_TTL`]).
    pub async fn session(&self, token: &str) -> Result<Option<Session>, Denied> {
        let s = match self.sessions.get(token) {
            Some(s) => s,
            None => {
                let Some(dir) = &self.directory else {
                    return Ok(None);
                };
                let s = dir
                    .session(token)
                    .await
                    .map_err(|e| Denied::Unavailable(e.to_string()))?;
                self.sessions.put(token, s.clone());
                s
            }
        };
        Ok(s.filter(|s| s.expires_ns > spanlens_auth::now_ns()))
    }

    /// The account `name` (cached for [`SESSION_TTL`]).
    pub async fn account(&self, name: &str) -> Result<Option<Arc<Account>>, Denied> {
        if let Some(a) = self.accounts.get(name) {
            return Ok(a);
        }
        let Some(dir) = &self.directory else {
            return Ok(None);
        };
        let a = dir
            .account(name)
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .map(Arc::new);
        self.accounts.put(name, a.clone());
        Ok(a)
    }

    /// Drops what is cached of a session (signed out through this server) and an account
    /// (changed through it).
    pub fn forget_session(&self, token: Option<&str>, account: Option<&str>) {
        if let Some(t) = token {
            self.sessions.remove(t);
        }
        if let Some(a) = account {
            self.accounts.remove(a);
        }
    }

    /// Seconds to wait before another sign-in attempt for `name` from `peer`, when recent
    /// failures are over [`MAX_FAILURES_PER_NAME`] or [`MAX_FAILURES_PER_PEER`] in
    /// [`FAILURE_WINDOW`]; `None`: go ahead.
    pub fn sign_in_wait(&self, name: &str, peer: Option<std::net::IpAddr>) -> Option<u64> {
        let mut f = lock(&self.failures);
        let now = Instant::now();
        let mut wait = None;
        for (k, limit) in failure_keys(name, peer) {
            if let Some(times) = f.get_mut(&k) {
                times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
                if times.len() >= limit {
                    let oldest = times[0];
                    let left = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.unwrap_or(0).max(left.as_secs() + 1));
                }
            }
        }
        wait
    }

    /// Counts a failed sign-in for `name` from `peer`.
    pub fn sign_in_failed(&self, name: &str, peer: Option<std::net::IpAddr>) {
        let mut f = lock(&self.failures);
        if f.len() >= CACHE_CAP {
            let now = Instant::now();
            f.retain(|_, t| {
                t.last()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        for (k, _) in failure_keys(name, peer) {
            f.entry(k).or_default().push(Instant::now());
        }
    }

    /// Drops what is cached of key `id` (it was just revoked through this server).
    pub fn forget(&self, id: &str) {
        self.keys.remove(id);
    }

    /// Saves the last-use times gathered since the previous call.
    pub async fn flush_uses(&self) {
        let Some(dir) = &self.directory else { return };
        let used: Vec<(String, i64)> = self
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (id, ns) in used {
            if let Err(e) = dir.record_use(&id, ns).await {
                tracing::warn!(key = %id, error = %e, "last use of a key not saved");
            }
        }
    }
}

/// The credential of a call from its `authorization` and `x-api-key` values: `None` when
/// neither is sent, `Some(None)` when what was sent is not a key.
pub fn credential(
    authorization: Option<&str>,
    api_key: Option<&str>,
) -> Option<Option<Credential>> {
    match (authorization, api_key) {
        (Some(a), _) => Some(Credential::from_authorization(a)),
        (None, Some(k)) => Some(Credential::from_token(k)),
        (None, None) => None,
    }
}

/// Saves last-use times every [`USE_FLUSH`] until `stopped`, and once more then.
pub async fn keep_uses(auth: Arc<Auth>, stopped: impl std::future::Future<Output = ()>) {
    let run = async {
        let mut tick = tokio::time::interval(USE_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            auth.flush_uses().await;
        }
    };
    tokio::select! {
        () = run => {}
        () = stopped => auth.flush_uses().await,
    }
}

/// Who made a request.
#[derive(Debug, Clone, Default)]
pub enum Who {
    /// Auth is off: anyone on loopback.
    #[default]
    Anyone,
    /// An API key.
    Key(Arc<ApiKey>),
    /// A signed-in account (the UI).
    Account(Arc<Account>),
}

/// Who made a request and the project it is bound to, as the guard found them (a request
/// extension).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Who.
    pub who: Who,
    /// The one project the request may reach (`None` with auth off).
    pub project: Option<String>,
}

impl Caller {
    /// A key's call: bound to the key's project.
    pub fn key(key: Arc<ApiKey>) -> Caller {
        Caller {
            project: Some(key.project.clone()),
            who: Who::Key(key),
        }
    }

    /// The project the request is bound to, if any.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The project a request goes to: the bound one; without one, what the request named.
    pub fn project_or(&self, named: Option<String>) -> Option<String> {
        self.project.clone().or(named)
    }

    /// Who the caller is, for the audit log.
    pub fn actor(&self) -> String {
        match &self.who {
            Who::Anyone => "local (auth off)".into(),
            Who::Key(k) => format!("key {} ({})", k.prefix(), k.name),
            Who::Account(a) => format!("account {}", a.name),
        }
    }

    /// Whether the caller may see that `project` exists (a project list).
    pub fn may_see(&self, project: &str) -> bool {
        match &self.who {
            Who::Anyone => true,
            Who::Key(k) => k.project == project,
            Who::Account(a) => a.roles.contains_key(project),
        }
    }
}
