//! What the CLI test files share: running the `spanlens` binary and reading its output.

use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spanlens");

/// Runs `spanlens` with `args` (no `SPANLENS_SERVER` from the environment, no stdin).
pub fn spanlens(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SPANLENS_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("run spanlens")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
