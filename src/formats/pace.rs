//! Whether a stream held for a late index is live: the rule the `packet-split` stage and
//! [`Recording`](crate::Recording) share. The caller passes the time; nothing here reads a
//! clock.
//!
//! An MP4 stream whose media comes before any `moov` is split with a reference's layout,
//! and its packets are held in case the index comes after the media (a whole file piped:
//! the index is then used). A live recording brings its media at about the speed it
//! plays, and may never bring an index: held, nothing would be written until it ends, and
//! a crash would lose it all. So once the input comes no faster than twice real time
//! (plus [`LIVE_SLACK`]), the held packets are released and the rest is split as it comes.

use std::time::{Duration, Instant};

/// Past this, a stream whose packets are held for a late index is taken for a live
/// recording: a pipe of a whole file brings media far faster than it plays, a live
/// recording at about the speed it plays.
pub const LIVE_SLACK: Duration = Duration::from_millis(1500);

/// Watches a held stream's pace.
#[derive(Debug, Default)]
pub struct LivePace {
    /// When holding began.
    started: Option<Instant>,
}

impl LivePace {
    /// Looks at the media held (`held_secs`, `None` when nothing is held) at `now`;
    /// returns the note to release the held packets with once the stream is live.
    pub fn check(&mut self, held_secs: Option<f64>, now: Instant) -> Option<String> {
        let Some(secs) = held_secs else {
            self.started = None;
            return None;
        };
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        (elapsed > LIVE_SLACK + Duration::from_secs_f64(secs.clamp(0.0, 1e6) / 2.0)).then(|| {
            format!(
                "the media came at about the speed it plays ({secs:.1} s of media in {:.1} s), as from a live \
                 recording: it is split with the reference's layout as it comes, and a 'moov' index that comes \
                 later is not used",
                elapsed.as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_as_fast_as_it_plays_is_live_one_much_faster_is_not() {
        let t0 = Instant::now();
        let mut pace = LivePace::default();
        assert_eq!(pace.check(Some(0.0), t0), None, "holding starts");
        // 10 s of media in 2 s: a file piped, keep holding.
        assert_eq!(pace.check(Some(10.0), t0 + Duration::from_secs(2)), None);
        // 10 s of media in 7 s (> 1.5 s + 10 s / 2): live.
        let note = pace.check(Some(10.0), t0 + Duration::from_secs(7)).expect("released");
        assert!(note.contains("10.0 s of media in 7.0 s"), "{note}");
        // Nothing held: the clock restarts with the next hold.
        assert_eq!(pace.check(None, t0 + Duration::from_secs(8)), None);
        assert_eq!(pace.check(Some(1.0), t0 + Duration::from_secs(9)), None);
    }
}
