//! What every backend derives from spans the same way, kept apart from any engine so SQLite,
//! PostgreSQL and later backends agree on it: the typed facts of a span (`prepare`), the trace
//! summary state (`summary`), the framed and compressed span bodies (`chunk`), and the shaping
//! of what a read returns (`read`).

pub mod body_json;
pub mod chunk;
pub mod erase;
pub mod prepare;
pub mod read;
pub mod scores;
pub mod summary;
