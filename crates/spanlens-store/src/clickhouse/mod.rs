//! Building blocks of the ClickHouse backend (issue #16, in progress): a client for ClickHouse's
//! HTTP interface and the `RowBinary` encoding its inserts use. The backend itself (schema,
//! writer, reads) is not built yet; `clickhouse://` store URIs are still refused.

pub mod client;
pub mod rowbinary;

pub use client::{ClickHouseError, Client, Endpoint};
pub use rowbinary::RowBinary;
