//! Resynchronising after damaged data inside a Segment: the search for a level-1 element
//! (a Cluster with a plausible size and a Timestamp, Cues, Tags, an EBML header) to resume at.

use super::super::ebml::{parse_header, Header, HeaderParse, MkvError};
use super::super::ids;
use super::{Level, MkvReader, MAX_META_ELEMENT, MAX_RESYNC_NOTES, MAX_RESYNC_SCAN, RESYNC_WINDOW};

impl MkvReader {
    /// Searches the queued bytes for a level-1 element to resume at, dropping the bytes
    /// before it. `true` when found (the reader is at it), `false` when more input is
    /// needed; the error that started the search when none is found in
    /// [`MAX_RESYNC_SCAN`] bytes.
    pub(super) fn scan(&mut self) -> Result<bool, MkvError> {
        loop {
            let start = self.resync.as_ref().expect("searching").start;
            let window = (self.queued as usize).min(RESYNC_WINDOW);
            if window == 0 {
                return Ok(false);
            }
            self.ensure(window);
            let data = &self.queue[0][..window];
            // A search that resumes where the last one did would find the same place.
            let from = usize::from(self.resumed_at == Some(self.offset));
            let mut found = None;
            let mut need_more = None;
            for i in from..window {
                if !matches!(data[i], 0x1F | 0x1C | 0x12 | 0x1A) {
                    continue;
                }
                match self.candidate(&data[i..], self.offset + i as u64) {
                    Some(Some(level)) => {
                        found = Some((i, level));
                        break;
                    }
                    Some(None) => {}
                    None => {
                        need_more = Some(i);
                        break;
                    }
                }
            }
            let drop = match (found, need_more) {
                (Some((i, level)), _) => {
                    self.skipping = i as u64;
                    self.drop_skipped();
                    let r = self.resync.take().expect("searching");
                    self.damaged += 1;
                    if self.notes.len() < MAX_RESYNC_NOTES {
                        self.notes.push(format!(
                            "damaged data at bytes {}..{} ({} bytes) skipped: {}; resumed at byte {}",
                            r.start,
                            self.offset,
                            self.offset - r.start,
                            r.error,
                            self.offset
                        ));
                    }
                    self.level = level;
                    self.resumed_at = Some(self.offset);
                    return Ok(true);
                }
                (None, Some(i)) => i,
                (None, None) => window,
            };
            if drop == 0 {
                return Ok(false);
            }
            self.skipping = drop as u64;
            self.drop_skipped();
            if self.offset - start > MAX_RESYNC_SCAN {
                let r = self.resync.take().expect("searching");
                return Err(r.error);
            }
        }
    }

    /// Whether `data` starts with an element to resume at: `Some(Some(level))` yes (the
    /// level to resume in), `Some(None)` no, `None` too few bytes to tell.
    fn candidate(&self, data: &[u8], offset: u64) -> Option<Option<Level>> {
        // A header at `at`: Some(Some(h)), Some(None) if invalid, None if cut short.
        let header = |at: usize| -> Option<Option<Header>> {
            let rest = data.get(at..).unwrap_or_default();
            match parse_header(rest, offset + at as u64) {
                Ok(HeaderParse::Header(h)) => Some(Some(h)),
                Ok(HeaderParse::NeedMore) => None,
                Err(_) => Some(None),
            }
        };
        let Some(h) = header(0)? else { return Some(None) };
        if !matches!(h.id, ids::CLUSTER | ids::CUES | ids::TAGS | ids::EBML) {
            return Some(None);
        }
        let Some(mut first) = header(h.header_len)? else { return Some(None) };
        let segment_end = match self.level {
            Level::Segment { end } | Level::Cluster { segment_end: end, .. } => end,
            Level::Top => None,
        };
        let segment = Level::Segment { end: segment_end };
        let sized = h.size.is_some_and(|s| s <= MAX_META_ELEMENT);
        let ok = match h.id {
            // A Cluster starts with its Timestamp (perhaps after a CRC-32).
            ids::CLUSTER => {
                if first.id == ids::CRC32 && first.size == Some(4) {
                    match header(h.header_len + first.header_len + 4)? {
                        Some(t) => first = t,
                        None => return Some(None),
                    }
                }
                first.id == ids::TIMESTAMP && first.size.is_some_and(|s| (1..=8).contains(&s))
            }
            ids::CUES => sized && first.id == ids::CUE_POINT && first.size.is_some(),
            ids::TAGS => sized && first.id == ids::TAG && first.size.is_some(),
            _ => {
                let ok = h.size.is_some_and(|s| s <= 4096)
                    && matches!(first.id, ids::EBML_VERSION | ids::EBML_READ_VERSION | ids::DOC_TYPE);
                return Some(ok.then_some(Level::Top));
            }
        };
        Some(ok.then_some(segment))
    }
}
