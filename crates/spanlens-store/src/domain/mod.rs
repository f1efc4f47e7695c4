//! Work built on the storage traits alone, so every backend gets it the same way.

pub mod content;
pub mod copy;
pub mod erase;
pub mod recovery;
pub mod reprice;
