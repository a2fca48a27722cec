//! Per-thread counts of parses: the proof, for the tests, that every `moov`, `moof` and
//! SPS is parsed once (`tests/core.rs`, `codecs/poc/tests.rs`). Compiled for the tests only
//! (unit tests, and integration tests through `internals`).

use std::cell::Cell;

/// What was parsed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Parsed {
    Moov,
    Moof,
    Sps,
}

thread_local! {
    static COUNTS: [Cell<u64>; 3] = const { [Cell::new(0), Cell::new(0), Cell::new(0)] };
}

/// Counts one parse of `what` on this thread.
pub(crate) fn count(what: Parsed) {
    COUNTS.with(|c| c[what as usize].set(c[what as usize].get() + 1));
}

/// Parses of `what` on this thread so far.
pub(crate) fn parses(what: Parsed) -> u64 {
    COUNTS.with(|c| c[what as usize].get())
}
