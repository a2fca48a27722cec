//! Reading a file for `livemux finalize`: its top-level boxes, its `moov` and every
//! `moof` (seeking over media), and the fragmented `moov` of a file finalized while its
//! recorder kept writing.

use std::io::{Read, Seek, SeekFrom};

use bytes::{BufMut, Bytes, BytesMut};

use super::super::boxes::{parse_header, FourCc, HeaderParse, Mp4Error, MAX_META_BOX, MAX_MOOF};
use super::super::moof::FragSample;
use super::super::moov::{parse_movie, Movie};
use super::plan::in_one_sector;
use super::{FinalizeMp4Error, FragmentIndex, Layout};

/// What [`scan`] found.
#[derive(Debug)]
pub enum Scanned {
    /// A regular MP4 already (its `moov` has no `mvex`): sample counts per track.
    Regular {
        /// Read by the tests only.
        #[cfg(any(test, feature = "internals"))]
        samples: Vec<u32>,
    },
    /// A fragmented MP4: its index up to the last complete fragment, and where things are.
    Fragmented { index: Box<FragmentIndex>, layout: Layout, notes: Vec<String> },
}

/// Reads `n` bytes at `offset`.
fn read_at<R: Read + Seek>(r: &mut R, offset: u64, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// A top-level box: offset, header length, size (to the end of the file for size 0).
#[derive(Clone, Copy, Debug)]
struct TopBox {
    offset: u64,
    fourcc: FourCc,
    header_len: u32,
    size: u64,
    /// Size 0 in the file: runs to the end.
    open_ended: bool,
}

impl TopBox {
    fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// How the walk over top-level boxes ended before the end of the file.
enum Stop {
    /// Clean: the last box ends at the end of the file.
    End,
    /// A box runs past the end of the file, or a header is cut.
    Cut(u64),
    /// Bytes that are no box header.
    Garbage(u64, Mp4Error),
}

/// The box whose header starts at `offset`, or why there is none.
fn top_box<R: Read + Seek>(r: &mut R, offset: u64, len: u64) -> Result<Result<TopBox, Stop>, std::io::Error> {
    if offset >= len {
        return Ok(Err(Stop::End));
    }
    let n = (len - offset).min(32) as usize;
    let head = read_at(r, offset, n)?;
    match parse_header(&head, offset) {
        Ok(HeaderParse::NeedMore) => Ok(Err(Stop::Cut(offset))),
        Err(e) => Ok(Err(Stop::Garbage(offset, e))),
        Ok(HeaderParse::Header(h)) => {
            let size = h.size.unwrap_or(len - offset);
            if offset.saturating_add(size) > len {
                return Ok(Err(Stop::Cut(offset)));
            }
            Ok(Ok(TopBox { offset, fourcc: h.fourcc, header_len: h.header_len, size, open_ended: h.size.is_none() }))
        }
    }
}

fn is_padding(f: FourCc) -> bool {
    matches!(&f.0, b"free" | b"skip" | b"wide")
}

/// Reads a file's top-level boxes, its `moov` and every `moof` (seeking over media), and
/// indexes every complete fragment.
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> Result<Scanned, FinalizeMp4Error> {
    // Up to the moov: remember the run of padding boxes just before it.
    let mut offset = 0;
    let mut padding: Vec<TopBox> = Vec::new();
    // No moov before the first fragment or the end: the file may be one finalized while
    // its recorder kept writing over the new moov (see `scan_hidden`).
    let moov = loop {
        let b = match top_box(r, offset, len)? {
            Ok(b) => b,
            Err(stop) => {
                if let Some(hidden) = scan_hidden(r, len)? {
                    return Ok(hidden);
                }
                return Err(FinalizeMp4Error::Unusable(match stop {
                    Stop::Cut(at) => format!(
                        "no complete 'moov' box: the file is cut at offset {at} before one; \
                         a recording without its index needs `livemux recover` with a reference"
                    ),
                    Stop::End | Stop::Garbage(..) => "no 'moov' box: not an MP4 that can be finalized; a recording \
                                                      without its index needs `livemux recover` with a reference"
                        .into(),
                }));
            }
        };
        match &b.fourcc.0 {
            b"moov" => break b,
            b"moof" => {
                if let Some(hidden) = scan_hidden(r, len)? {
                    return Ok(hidden);
                }
                return Err(FinalizeMp4Error::Unusable(format!(
                    "a 'moof' at offset {} comes before any 'moov'",
                    b.offset
                )));
            }
            _ if is_padding(b.fourcc) && b.offset > 0 => padding.push(b),
            _ => padding.clear(),
        }
        if b.open_ended {
            if let Some(hidden) = scan_hidden(r, len)? {
                return Ok(hidden);
            }
            return Err(FinalizeMp4Error::Unusable(format!(
                "no 'moov' box before the '{}' box at offset {} that runs to the end of the file",
                b.fourcc, b.offset
            )));
        }
        offset = b.end();
    };
    if moov.size > MAX_META_BOX {
        return Err(Mp4Error::TooLarge {
            what: "'moov' box".into(),
            offset: moov.offset,
            size: moov.size,
            limit: MAX_META_BOX,
        }
        .into());
    }
    let data: Bytes = read_at(r, moov.offset, moov.size as usize)?.into();
    let movie = parse_movie(&data, moov.offset, moov.header_len)?;
    if !movie.fragmented {
        return match first_moof_after(r, moov.end(), len)? {
            None => Ok(Scanned::Regular {
                #[cfg(any(test, feature = "internals"))]
                samples: movie.tracks.iter().map(|t| t.table.sample_count).collect(),
            }),
            Some(stray) => scan_mixed(r, len, &moov, &movie, stray),
        };
    }
    let mut index = FragmentIndex::in_file(data, moov.offset, moov.header_len, len)?;
    let reserve = padding.iter().filter(|b| b.size >= 16).max_by_key(|b| (b.size, u64::MAX - b.offset));
    let reserve = reserve.map(|b| (b.offset, b.size));
    let walk = index_fragments(r, len, &mut index, moov.end())?;
    let notes = walk.notes(len, &index);
    let layout = Layout { reserve, moov_offset: moov.offset, end: walk.end, len };
    Ok(Scanned::Fragmented { index: Box::new(index), layout, notes })
}

/// What [`index_fragments`] found.
struct FragmentWalk {
    /// End of the last complete fragment (T).
    end: u64,
    /// Complete fragments, and the offset of each one's `moof`.
    moofs: Vec<u64>,
    damaged: Option<(u64, Mp4Error)>,
    stop: Stop,
    /// The `moof` of the first fragment whose media is not all in the file.
    incomplete: Option<u64>,
}

impl FragmentWalk {
    /// The notes for the user: what is cut, what the index holds.
    fn notes(&self, len: u64, index: &FragmentIndex) -> Vec<String> {
        let mut notes = Vec::new();
        if len > self.end {
            let what = match (&self.damaged, &self.stop, self.incomplete) {
                (Some((at, e)), _, _) => format!("a damaged fragment at offset {at} ({e}) and what follows it"),
                (None, _, Some(at)) => format!("an incomplete last fragment (its moof is at offset {at})"),
                (None, Stop::Cut(at), None) => format!("a box cut short at offset {at}"),
                (None, Stop::Garbage(at, e), None) => format!("bytes that are no box at offset {at} ({e})"),
                (None, Stop::End, None) => "boxes after the last fragment".to_string(),
            };
            notes.push(format!("cut {} bytes at offset {}: {what}", len - self.end, self.end));
        }
        notes.extend(index.notes());
        notes.push(format!(
            "{} fragments, {} samples",
            self.moofs.len(),
            index.sample_counts().iter().map(|&n| n as u64).sum::<u64>()
        ));
        notes
    }
}

/// Walks the top-level boxes from `from` (the end of the fragmented `moov`) and adds every
/// complete fragment to `index`: parsed when its `moof` is read, added once the media it
/// points at is inside complete boxes. Refuses a damaged fragment followed by complete ones.
fn index_fragments<R: Read + Seek>(
    r: &mut R,
    len: u64,
    index: &mut FragmentIndex,
    from: u64,
) -> Result<FragmentWalk, FinalizeMp4Error> {
    let mut pending: std::collections::VecDeque<(Vec<FragSample>, u64, u64)> = Default::default();
    let mut end = from;
    let mut moofs = Vec::new();
    let mut damaged: Option<(u64, Mp4Error)> = None;
    let mut offset = from;
    let stop = loop {
        let b = match top_box(r, offset, len)? {
            Ok(b) => b,
            Err(stop) => break stop,
        };
        if b.open_ended && b.fourcc.0 != *b"mdat" {
            break Stop::Garbage(b.offset, Mp4Error::invalid(format!("'{}' box", b.fourcc), b.offset, "size 0"));
        }
        if b.fourcc.0 == *b"moof" {
            if let Some((at, _)) = &damaged {
                return Err(FinalizeMp4Error::Unusable(format!(
                    "the fragment at offset {at} is damaged and complete fragments follow it \
                     (offset {}): not cutting them off; `livemux remux` copies what is readable",
                    b.offset
                )));
            }
            if b.size > MAX_MOOF {
                damaged = Some((
                    b.offset,
                    Mp4Error::TooLarge { what: "'moof' box".into(), offset: b.offset, size: b.size, limit: MAX_MOOF },
                ));
            } else {
                let data = read_at(r, b.offset, b.size as usize)?;
                match index.parse_fragment(&data, b.offset, b.header_len) {
                    Ok(samples) => {
                        // An end past 64 bits is past the file: the fragment never completes.
                        let max_end =
                            samples.iter().map(|s| s.info.offset.saturating_add(s.info.size as u64)).max().unwrap_or(0);
                        pending.push_back((samples, b.offset, max_end));
                    }
                    Err(e) => damaged = Some((b.offset, e)),
                }
            }
        }
        if damaged.is_none() {
            while pending.front().is_some_and(|(_, _, max_end)| *max_end <= b.end()) {
                let (samples, at, _) = pending.pop_front().expect("a pending fragment");
                index.add(&samples)?;
                end = b.end();
                moofs.push(at);
            }
        }
        offset = b.end();
    };
    if index.fragments() == 0 {
        return Err(FinalizeMp4Error::Unusable(match damaged {
            Some((at, e)) => format!("no complete fragment before the damaged one at offset {at}: {e}"),
            None => "no complete fragment: the recording stopped before its first fragment was written".into(),
        }));
    }
    let incomplete = pending.front().map(|(_, at, _)| *at);
    Ok(FragmentWalk { end, moofs, damaged, stop, incomplete })
}

/// The first top-level `moof` at or after `from`, if the boxes from there lead to one.
fn first_moof_after<R: Read + Seek>(r: &mut R, from: u64, len: u64) -> std::io::Result<Option<TopBox>> {
    let mut offset = from;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.fourcc.0 == *b"moof" {
            return Ok(Some(b));
        }
        if b.open_ended {
            break;
        }
        offset = b.end();
    }
    Ok(None)
}

/// Bytes of an `mdat` searched for the fragmented `moov` of a file finalized while its
/// recorder kept writing (the reserve that preceded it is at most this large).
pub const MAX_OLD_MOOV_SEARCH: u64 = 256 << 20;

/// The fragmented `moov` a file was finalized from, inside the top-level `mdat` boxes
/// before `until` (finalizing covers it with the `mdat`): the first `moov` box there that
/// parses, is fragmented and declares the same track ids, in order, as `regular` (if
/// given). Returns the `mdat`, the `moov` and its bytes.
fn find_old_moov<R: Read + Seek>(
    r: &mut R,
    len: u64,
    regular: Option<&Movie>,
    until: u64,
) -> Result<Option<(TopBox, TopBox, Bytes)>, FinalizeMp4Error> {
    const BLOCK: usize = 1 << 20;
    let ids: Option<Vec<u32>> = regular.map(|m| m.tracks.iter().map(|t| t.track_id).collect());
    let mut offset = 0;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.offset >= until {
            break;
        }
        if b.fourcc.0 == *b"mdat" {
            if let Some((cand, data)) = overwritten_moov(r, &b)? {
                if let Ok(movie) = parse_movie(&data, cand.offset, cand.header_len) {
                    let same_ids =
                        ids.as_ref().is_none_or(|ids| movie.tracks.iter().map(|t| t.track_id).eq(ids.iter().copied()));
                    if movie.fragmented && !movie.tracks.is_empty() && same_ids {
                        return Ok(Some((b, cand, data)));
                    }
                }
            }
            let (from, to) = (b.offset + b.header_len as u64, b.end().min(b.offset + MAX_OLD_MOOV_SEARCH));
            let mut at = from;
            while at + 8 <= to {
                let n = (to - at).min(BLOCK as u64 + 16) as usize;
                let buf = read_at(r, at, n)?;
                for i in buf.windows(4).enumerate().filter(|(_, w)| *w == b"moov").map(|(i, _)| i) {
                    let Some(start) = (at + i as u64).checked_sub(4).filter(|&s| s >= from) else { continue };
                    let Ok(Ok(cand)) = top_box(r, start, b.end()) else { continue };
                    if cand.fourcc.0 != *b"moov" || cand.size > MAX_META_BOX || cand.size < 16 {
                        continue;
                    }
                    // Read a candidate only if its first child looks like a moov's.
                    let first = read_at(r, cand.offset + cand.header_len as u64, 8)?;
                    let child = u32::from_be_bytes(first[..4].try_into().expect("4 bytes")) as u64;
                    let plausible = matches!(&first[4..8], b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods");
                    if !plausible || child < 8 || child > cand.size - cand.header_len as u64 {
                        continue;
                    }
                    let data: Bytes = read_at(r, cand.offset, cand.size as usize)?.into();
                    let Ok(movie) = parse_movie(&data, cand.offset, cand.header_len) else { continue };
                    let same_ids =
                        ids.as_ref().is_none_or(|ids| movie.tracks.iter().map(|t| t.track_id).eq(ids.iter().copied()));
                    if movie.fragmented && !movie.tracks.is_empty() && same_ids {
                        return Ok(Some((b, cand, data)));
                    }
                }
                if n < BLOCK + 16 {
                    break;
                }
                at += BLOCK as u64;
            }
        }
        if b.open_ended {
            break;
        }
        offset = b.end();
    }
    Ok(None)
}

/// The fragmented `moov` under the header of `mdat`, rebuilt: without a reserve, the
/// switch of a `moov` at the end is written over the fragmented `moov`'s header and, with
/// a 16-byte `mdat` header, its `mvhd`'s header. The rest is intact: the `mvhd` body (whose
/// size its version gives), then the other children up to the first box that no `moov`
/// holds (the first `moof`). `None` if the bytes do not read that way.
fn overwritten_moov<R: Read + Seek>(r: &mut R, mdat: &TopBox) -> Result<Option<(TopBox, Bytes)>, FinalizeMp4Error> {
    let (m, h) = (mdat.offset, mdat.header_len as u64);
    let child = |fourcc: &[u8]| matches!(fourcc, b"mvhd" | b"trak" | b"mvex" | b"udta" | b"meta" | b"iods" | b"free");
    let head = |r: &mut R, at: u64| -> std::io::Result<Option<(u64, [u8; 4])>> {
        if at.saturating_add(8) > mdat.end() {
            return Ok(None);
        }
        let b = read_at(r, at, 8)?;
        let size = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as u64;
        Ok(Some((size, b[4..8].try_into().expect("4 bytes"))))
    };
    // The first child: an intact mvhd (8-byte mdat header) or its body (16 bytes).
    let (mut at, mvhd_header) = match h {
        8 => match head(r, m + 8)? {
            Some((size, f)) if &f == b"mvhd" && (108..=120).contains(&size) => (m + 8 + size, None),
            _ => return Ok(None),
        },
        16 => {
            let Some(&[version, 0, 0, 0]) = read_at(r, m + 16, 4).ok().as_deref() else { return Ok(None) };
            let size = match version {
                0 => 108u64,
                1 => 120,
                _ => return Ok(None),
            };
            (m + 8 + size, Some(size))
        }
        _ => return Ok(None),
    };
    let mut traks = 0;
    while let Some((size, f)) = head(r, at)? {
        if !child(&f) || size < 8 || at + size > mdat.end() {
            break;
        }
        traks += (&f == b"trak") as usize;
        at += size;
    }
    let size = at - m;
    if traks == 0 || size > MAX_META_BOX {
        return Ok(None);
    }
    let mut data = BytesMut::with_capacity(size as usize);
    data.put_u32(size as u32);
    data.put_slice(b"moov");
    if let Some(mvhd) = mvhd_header {
        data.put_u32(mvhd as u32);
        data.put_slice(b"mvhd");
    }
    data.put_slice(&read_at(r, m + h, (at - m - h) as usize)?);
    let cand = TopBox { offset: m, fourcc: FourCc::new(b"moov"), header_len: 8, size, open_ended: false };
    Ok(Some((cand, data.freeze())))
}

/// A file with no top-level `moov` whose first `mdat` hides a fragmented `moov` and its
/// fragments, which go on past the `mdat`'s end: `livemux finalize` put the index at the
/// end (behind a reserve too small for it) while the recorder was still writing, and the
/// recorder's next fragment went over the new `moov`. The index is built from the hidden
/// `moov` over every fragment, and the switch rewrites that `mdat`'s header. `None` when
/// the file is not in that state.
fn scan_hidden<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Scanned>, FinalizeMp4Error> {
    let Some((mdat, old, data)) = find_old_moov(r, len, None, len)? else { return Ok(None) };
    // Not that state after all: the caller reports the missing moov.
    let Ok(mut index) = FragmentIndex::in_file(data, old.offset, old.header_len, len) else { return Ok(None) };
    let Ok(walk) = index_fragments(r, len, &mut index, old.end()) else { return Ok(None) };
    // The switch rewrites the mdat header: it may go over the old moov (read already),
    // never over media, which starts after it.
    let header = if in_one_sector(mdat.offset, 16) { 16 } else { 8 };
    if walk.end <= mdat.end() || mdat.offset + header > old.end() {
        return Ok(None);
    }
    let mut notes = vec![format!(
        "no top-level moov: the mdat at offset {} hides the fragmented moov (offset {}) of fragments that go on \
         past its end (offset {}): it was finalized while its recorder was still writing, which then wrote over \
         the new moov; its later fragments are indexed with the rest",
        mdat.offset,
        old.offset,
        mdat.end()
    )];
    notes.extend(walk.notes(len, &index));
    let layout = Layout { reserve: None, moov_offset: mdat.offset, end: walk.end, len };
    Ok(Some(Scanned::Fragmented { index: Box::new(index), layout, notes }))
}

/// A regular MP4 followed by fragments: `livemux finalize` ran while the recorder was
/// still appending fragments, which then referred to a `moov` that no longer has `mvex`
/// (FFmpeg: "trun track id unknown, no tfhd"). The fragmented `moov` it was finalized
/// from is still in the file, inside the `mdat`, and so is every fragment before the
/// finalize: the index is built again from it over all fragments, the stray ones
/// included, as if the finalize had run at the end. The switch goes over the first box
/// of the regular layout (the regular `moov` before its `mdat`, or the `mdat` before it),
/// so the new `mdat` covers the old index and every fragment: the plan is the one of a
/// `moov` at the end, and a crash before the switch leaves the file as it was.
fn scan_mixed<R: Read + Seek>(
    r: &mut R,
    len: u64,
    regular_moov: &TopBox,
    regular: &Movie,
    stray: TopBox,
) -> Result<Scanned, FinalizeMp4Error> {
    let mixed = format!(
        "a regular MP4 (moov at offset {}) followed by fragments (the first 'moof' at offset {}): it was \
         finalized while its recorder was still writing",
        regular_moov.offset, stray.offset
    );
    let Some((_, old, data)) = find_old_moov(r, len, Some(regular), stray.offset)? else {
        return Err(FinalizeMp4Error::Unusable(format!(
            "{mixed}, and the fragmented moov it was finalized from is not found in its mdat, so the fragments \
             after it cannot be indexed; `livemux remux` copies what the regular moov indexes"
        )));
    };
    // The first box of the regular layout after the leading boxes: the regular moov
    // (faststart) or the mdat before it (moov at the end); its header takes the switch.
    let mut switch_at = regular_moov.offset;
    let mut offset = 0;
    while let Ok(b) = top_box(r, offset, len)? {
        if b.offset >= regular_moov.offset {
            break;
        }
        if b.fourcc.0 == *b"mdat" && b.end() > old.offset {
            switch_at = b.offset;
            break;
        }
        offset = b.end();
    }
    let mut index = FragmentIndex::in_file(data, old.offset, old.header_len, len)?;
    let walk = index_fragments(r, len, &mut index, old.end())?;
    let stray_fragments = walk.moofs.iter().filter(|&&at| at >= stray.offset).count();
    let counts = index.sample_counts();
    let regular_counts = regular.tracks.iter().map(|t| t.table.sample_count);
    if stray_fragments == 0 || counts.iter().zip(regular_counts).any(|(&n, r)| n < r) {
        return Err(FinalizeMp4Error::Unusable(format!(
            "{mixed}, but the fragmented moov found at offset {} and its fragments do not hold what the regular \
             moov indexes plus the fragments after it; not changing the file",
            old.offset
        )));
    }
    let mut notes = vec![format!(
        "{mixed}; its {stray_fragments} later fragments are indexed with the rest, from the fragmented moov at \
         offset {}",
        old.offset
    )];
    notes.extend(walk.notes(len, &index));
    let layout = Layout { reserve: None, moov_offset: switch_at, end: walk.end, len };
    Ok(Scanned::Fragmented { index: Box::new(index), layout, notes })
}
