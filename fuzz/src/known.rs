//! Known defects, told apart from new findings: those being fixed elsewhere (`K*`) and those
//! this fuzzing found and reported without fixing them here (`F*`, see fuzz/README.md).
//!
//! A target that meets one of these panics with a message that starts with its tag (e.g.
//! `[K1]`), so the replay test can check that a reproducer listed in `known.txt` still fails
//! for the listed reason and no other. While fuzzing, `SPANLENS_FUZZ_KNOWN=skip` makes the
//! targets return instead, so libFuzzer keeps searching for new defects rather than stopping
//! at the first input of a known class (see fuzz/README.md); the replay test skips them the
//! same way on the corpus ([`set_skipping`]), where many inputs reach a known class.

use std::cell::Cell;
use std::sync::OnceLock;

/// A known defect class. None is open: the ones fuzzing found (times past 2^63 ns, INTERNAL
/// for malformed gRPC, doubles off by an ulp through JSON, overflowing analysis sums, costs
/// that did not read back) are fixed, and their reproducers under `artifacts/` now run as
/// strict regression inputs. Add a variant here, with its tag, while a defect is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {}

impl Known {
    /// The tag the panic message starts with.
    pub fn tag(self) -> &'static str {
        match self {}
    }
}

thread_local! {
    static SKIP_HERE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// True when the known classes are skipped rather than reported: as set for this thread by
/// [`set_skipping`], else as `SPANLENS_FUZZ_KNOWN=skip` says.
pub fn skipping() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    SKIP_HERE.with(Cell::get).unwrap_or_else(|| {
        *SKIP.get_or_init(|| std::env::var("SPANLENS_FUZZ_KNOWN").is_ok_and(|v| v == "skip"))
    })
}

/// Skips (true) or reports (false) the known classes on this thread, whatever the environment.
pub fn set_skipping(skip: bool) {
    SKIP_HERE.with(|s| s.set(Some(skip)));
}

/// Reports a known defect: returns (to skip the rest of the input) when skipping, else panics
/// with the class's tag.
pub fn hit(k: Known, what: &str) {
    if !skipping() {
        panic!("{} known defect: {what}", k.tag());
    }
}
