//! Indexing an input for `append`: every sample of every track with its timing, the byte
//! ranges ("pieces") the samples are stored in, and the chunks a slice selects from.
//!
//! A progressive file's chunks are the chunks of its sample-to-chunk tables, all tracks
//! together in file order; a fragmented file's chunks are its fragments (a `moof` and the
//! media it points at). A piece is one contiguous run of one track's samples: a table
//! chunk, or a run of a `trun`.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use bytes::Bytes;

use super::super::boxes::{find_child, BoxHeader, Child, FourCc, Mp4Error, Reader, MAX_META_BOX, MAX_MOOF};
use super::super::file::{top_level, FileError};
use super::super::moof::parse_moof;
pub use super::super::moov::codec_family as family;
use super::super::moov::{parse_movie, parse_sample_entry, Movie, Mp4Track};
use super::super::sample_table::{SampleCursor, SampleTable};
use super::AppendError;
use crate::codecs::{CodecConfig, CodecError};
use crate::model::{Edit, TrackKind};

/// Most sample entries kept per track.
pub const MAX_SAMPLE_ENTRIES: usize = 4096;
/// Largest `ftyp` read.
pub const MAX_FTYP: u64 = 64 << 10;
/// Most samples indexed per track (16 bytes each in memory).
pub const MAX_TRACK_SAMPLES: usize = 1 << 25;
/// Most samples indexed per input, all tracks together (1 GiB of index in memory).
pub const MAX_INPUT_SAMPLES: usize = 1 << 26;

/// What `append` reads from a file before planning: the top-level layout and the metadata
/// boxes, never the media.
#[derive(Clone, Debug, Default)]
pub struct InputData {
    pub len: u64,
    pub top: Vec<(u64, BoxHeader)>,
    /// The whole `ftyp` box when the file starts with one.
    pub ftyp: Option<Bytes>,
    /// The first `moov`: offset, header length, whole box.
    pub moov: Option<(u64, u32, Bytes)>,
    /// Every complete `moof`, in file order.
    pub moofs: Vec<(u64, u32, Bytes)>,
}

fn read_box<R: Read + Seek>(r: &mut R, offset: u64, size: u64) -> Result<Bytes, FileError> {
    let mut data = vec![0u8; size as usize];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut data)?;
    Ok(data.into())
}

impl InputData {
    /// Reads the layout and metadata boxes of a complete file of `len` bytes.
    pub fn read<R: Read + Seek>(r: &mut R, len: u64) -> Result<Self, FileError> {
        let top = top_level(r, len)?;
        let mut data = InputData { len, ..Default::default() };
        for (i, &(offset, h)) in top.iter().enumerate() {
            let size = h.size.unwrap_or(len - offset);
            let complete = offset.checked_add(size).is_some_and(|end| end <= len);
            match &h.fourcc.0 {
                b"ftyp" if i == 0 && complete && size <= MAX_FTYP => data.ftyp = Some(read_box(r, offset, size)?),
                b"moov" if data.moov.is_none() => {
                    if size > MAX_META_BOX {
                        return Err(Mp4Error::TooLarge {
                            what: "'moov' box".into(),
                            offset,
                            size,
                            limit: MAX_META_BOX,
                        }
                        .into());
                    }
                    if !complete {
                        return Err(Mp4Error::invalid("'moov' box", offset, "cut short by the end of the file").into());
                    }
                    data.moov = Some((offset, h.header_len, read_box(r, offset, size)?));
                }
                b"moof" if complete => {
                    if size > MAX_MOOF {
                        return Err(
                            Mp4Error::TooLarge { what: "'moof' box".into(), offset, size, limit: MAX_MOOF }.into()
                        );
                    }
                    data.moofs.push((offset, h.header_len, read_box(r, offset, size)?));
                }
                _ => {}
            }
        }
        data.top = top;
        Ok(data)
    }
}

/// One sample, in its own track's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sample {
    /// Size as the sample-size table states it (QuickTime PCM may say 1 for a whole frame).
    pub size: u32,
    pub duration: u32,
    pub cts: i32,
    /// 1-based index into the track's sample entries.
    pub desc: u16,
    pub sync: bool,
    /// The `sdtp` byte (0: unknown).
    pub sdtp: u8,
}

/// One contiguous byte range of one track's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub track: usize,
    pub offset: u64,
    pub len: u64,
    /// Index of the first sample in the track's samples.
    pub first: usize,
    pub count: usize,
    pub desc: u16,
}

impl Piece {
    pub fn samples(&self) -> Range<usize> {
        self.first..self.first + self.count
    }

    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A sample entry of `stsd`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The whole box.
    pub bytes: Bytes,
    pub fourcc: FourCc,
    pub config: Result<CodecConfig, CodecError>,
}

/// A sample-to-group table (`sbgp`) and its group descriptions (`sgpd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleGroup {
    pub grouping_type: [u8; 4],
    /// `grouping_type_parameter` of a version-1 `sbgp`.
    pub parameter: Option<u32>,
    /// The whole `sgpd` box with the same grouping type, if any.
    pub sgpd: Option<Bytes>,
    /// (sample_count, group_description_index) runs over the track's samples.
    pub runs: Vec<(u32, u32)>,
}

impl SampleGroup {
    /// The runs covering samples `range` (samples past the table are in no group: index 0).
    pub fn runs_for(&self, range: Range<usize>) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        let mut push = |n: u64, index: u32| {
            if n == 0 {
                return;
            }
            match out.last_mut() {
                Some((c, i)) if *i == index && (*c as u64 + n) <= u32::MAX as u64 => *c += n as u32,
                _ => out.push((n as u32, index)),
            }
        };
        let (start, end) = (range.start as u64, range.end as u64);
        let mut pos = 0u64;
        for &(count, index) in &self.runs {
            let (a, b) = (pos.max(start), (pos + count as u64).min(end));
            if a < b {
                push(b - a, index);
            }
            pos += count as u64;
            if pos >= end {
                break;
            }
        }
        if pos < end {
            push(end - pos.max(start), 0);
        }
        out
    }
}

/// One track of an input.
#[derive(Clone, Debug)]
pub struct TrackIndex {
    pub track_id: u32,
    pub kind: TrackKind,
    pub timescale: u32,
    pub edits: Vec<Edit>,
    pub entries: Vec<Entry>,
    pub samples: Vec<Sample>,
    pub has_sdtp: bool,
    pub groups: Vec<SampleGroup>,
}

impl TrackIndex {
    /// "video h264 640x360", "audio aac 48000 Hz 2 ch", for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{}", self.kind);
        if let Some(e) = self.entries.first() {
            s += &format!(" {}", family(e.fourcc));
            if let Ok(c) = &e.config {
                if let Some(d) = c.dimensions() {
                    s += &format!(" {}x{}", d.width, d.height);
                }
                if let Some(a) = c.audio_format() {
                    s += &format!(" {} Hz {} ch", a.sample_rate, a.channels);
                }
            }
        }
        s
    }
}

/// An input, indexed.
#[derive(Clone, Debug)]
pub struct InputIndex {
    pub name: String,
    pub movie_timescale: u32,
    pub tracks: Vec<TrackIndex>,
    /// Pieces in chunk order.
    pub pieces: Vec<Piece>,
    /// Each chunk as a range of `pieces`.
    pub chunks: Vec<Range<usize>>,
    /// The index lives in fragments (`mvex`).
    pub fragmented: bool,
    /// One past the last byte any sample occupies.
    pub referenced_end: u64,
    pub ftyp: Option<Bytes>,
    /// The whole `moov` box, where it is and its header length.
    pub moov: Bytes,
    pub moov_offset: u64,
    pub moov_header_len: u32,
    pub notes: Vec<String>,
}

fn children_path<'a>(start: &Child<'a>, path: &[&[u8; 4]]) -> Result<Option<Child<'a>>, Mp4Error> {
    let mut cur = *start;
    for name in path {
        match find_child(&cur.reader(), name)? {
            Some(c) => cur = c,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// The sample entries of an `stsd`.
fn sample_entries(moov: &Bytes, moov_offset: u64, stsd: &Child<'_>, kind: TrackKind) -> Result<Vec<Entry>, Mp4Error> {
    let mut r = stsd.reader();
    r.full_header()?;
    let count = r.u32()?;
    let mut out = Vec::new();
    for child in r.children() {
        let child = child?;
        if out.len() as u32 >= count {
            break;
        }
        if out.len() >= MAX_SAMPLE_ENTRIES {
            return Err(Mp4Error::TooLarge {
                what: "'stsd' entry count".into(),
                offset: stsd.offset,
                size: count as u64,
                limit: MAX_SAMPLE_ENTRIES as u64,
            });
        }
        let bytes = moov.slice(child.range_in(moov_offset));
        let config = parse_sample_entry(&child, kind, &bytes);
        out.push(Entry { bytes, fourcc: child.fourcc, config });
    }
    if out.is_empty() {
        return Err(Mp4Error::invalid("'stsd' box", stsd.offset, "no sample entry"));
    }
    Ok(out)
}

/// The `sbgp` tables of an `stbl` with their `sgpd` boxes.
fn sample_groups(moov: &Bytes, moov_offset: u64, stbl: &Child<'_>) -> Result<Vec<SampleGroup>, Mp4Error> {
    let mut sgpds: Vec<([u8; 4], Bytes)> = Vec::new();
    let mut groups = Vec::new();
    for c in stbl.reader().children() {
        let c = c?;
        match &c.fourcc.0 {
            b"sgpd" => {
                let mut r = c.reader();
                r.full_header()?;
                sgpds.push((r.fourcc()?.0, moov.slice(c.range_in(moov_offset))));
            }
            b"sbgp" => {
                let mut r = c.reader();
                let (version, _) = r.full_header()?;
                let grouping_type = r.fourcc()?.0;
                let parameter = if version == 1 { Some(r.u32()?) } else { None };
                let count = r.u32()?;
                let n = r.check_entries(count as u64, 8, "sbgp entry_count")?;
                let mut runs = Vec::with_capacity(n);
                for _ in 0..n {
                    runs.push((r.u32()?, r.u32()?));
                }
                groups.push(SampleGroup { grouping_type, parameter, sgpd: None, runs });
            }
            _ => {}
        }
    }
    for g in &mut groups {
        g.sgpd = sgpds.iter().find(|(t, _)| *t == g.grouping_type).map(|(_, b)| b.clone());
    }
    Ok(groups)
}

/// The `sdtp` bytes of an `stbl`, if any.
fn sdtp<'a>(stbl: &Child<'a>) -> Result<Option<&'a [u8]>, Mp4Error> {
    let Some(c) = find_child(&stbl.reader(), b"sdtp")? else { return Ok(None) };
    let mut r = c.reader();
    r.full_header()?;
    let n = r.remaining();
    Ok(Some(r.bytes(n)?))
}

/// The constant size of `stsz`, if it states one.
fn constant_size(stbl: &Child<'_>) -> Result<Option<u32>, Mp4Error> {
    let Some(c) = find_child(&stbl.reader(), b"stsz")? else { return Ok(None) };
    let mut r = c.reader();
    r.full_header()?;
    let size = r.u32()?;
    Ok((size != 0).then_some(size))
}

/// Checks the sample count a track's tables claim before anything is allocated for it:
/// against the limits, and, when `stsz` states one size for every sample (so that a
/// 20-byte box can claim billions of samples), against the bytes of the file that must
/// hold them. Per-sample size tables are already bounded by the bytes they take in the
/// `moov`. `total` counts the samples of the input's earlier tracks.
pub(super) fn check_sample_count(
    track_id: u32,
    count: u64,
    sample_bytes: Option<u32>,
    total: u64,
    file_len: u64,
) -> Result<(), String> {
    if count > MAX_TRACK_SAMPLES as u64 {
        return Err(format!("track {track_id} has {count} samples, over the limit of {MAX_TRACK_SAMPLES}"));
    }
    if total.saturating_add(count) > MAX_INPUT_SAMPLES as u64 {
        return Err(format!(
            "its tracks have over {MAX_INPUT_SAMPLES} samples together (track {track_id} adds {count}), the limit"
        ));
    }
    if let Some(size) = sample_bytes {
        let need = count.checked_mul(size as u64);
        if need.is_none_or(|n| n > file_len) {
            return Err(format!(
                "track {track_id} claims {count} samples of {size} bytes ({} bytes), but the file has only {file_len} \
                 bytes: its sample tables are damaged or the file is cut short",
                need.map_or_else(|| "over 2^64".to_string(), |n| n.to_string())
            ));
        }
    }
    Ok(())
}

/// Adds a sample to the last piece, or opens a piece when the sample does not continue it.
fn push_piece(pieces: &mut Vec<Piece>, from: usize, track: usize, offset: u64, bytes: u64, index: usize, desc: u16) {
    if let Some(p) = pieces[from..].last_mut() {
        if p.track == track && p.end() == offset && p.desc == desc && p.first + p.count == index {
            p.len += bytes;
            p.count += 1;
            return;
        }
    }
    pieces.push(Piece { track, offset, len: bytes, first: index, count: 1, desc });
}

/// `Mp4Error` of input `name` as an [`AppendError`].
fn mp4(name: &str) -> impl Fn(Mp4Error) -> AppendError + '_ {
    move |e| AppendError::Mp4 { input: name.to_string(), source: e }
}

/// Why input `name` cannot be appended.
fn unusable(name: &str) -> impl Fn(String) -> AppendError + '_ {
    move |reason| AppendError::Unusable { input: name.to_string(), reason }
}

/// An input being indexed: its pieces so far, the samples counted against the limits, the
/// notes for the user.
struct Indexer<'d> {
    data: &'d InputData,
    name: &'d str,
    pieces: Vec<Piece>,
    total_samples: usize,
    notes: Vec<String>,
}

impl Indexer<'_> {
    /// Track `i` of the `moov`'s tables (`trak` is its box, `t` what [`parse_movie`] read):
    /// its sample entries, samples, `sdtp` and sample groups; its chunks become pieces.
    fn table_track(&mut self, i: usize, trak: &Child<'_>, t: &Mp4Track) -> Result<TrackIndex, AppendError> {
        let (mp4, unusable) = (mp4(self.name), unusable(self.name));
        let (moov_offset, _, moov) = self.data.moov.as_ref().expect("indexed after the moov");
        let stbl = children_path(trak, &[b"mdia", b"minf", b"stbl"])
            .map_err(&mp4)?
            .ok_or_else(|| unusable(format!("track {} has no 'stbl'", t.track_id)))?;
        let stsd = find_child(&stbl.reader(), b"stsd")
            .map_err(&mp4)?
            .ok_or_else(|| unusable(format!("track {} has no 'stsd'", t.track_id)))?;
        let entries = sample_entries(moov, *moov_offset, &stsd, t.kind).map_err(&mp4)?;
        let table = SampleTable::parse(moov, *moov_offset, &stbl.reader()).map_err(&mp4)?;
        // QuickTime PCM states a sample size of 1 for "one frame, see the sound description".
        let constant = constant_size(&stbl).map_err(&mp4)?;
        let byte_size = match (&entries[0].config, constant) {
            (Ok(CodecConfig::Pcm { pcm }), Some(1)) => Some(pcm.bytes_per_frame().max(1)),
            _ => None,
        };
        let count = table.sample_count as u64;
        check_sample_count(t.track_id, count, byte_size.or(constant), self.total_samples as u64, self.data.len)
            .map_err(&unusable)?;
        self.total_samples += table.sample_count as usize;
        let sdtp = sdtp(&stbl).map_err(&mp4)?;
        let groups = sample_groups(moov, *moov_offset, &stbl).map_err(&mp4)?;
        let track_pieces = self.pieces.len();
        let samples = self.table_samples(i, t, &table, entries.len(), byte_size, sdtp)?;
        if self.pieces[track_pieces..].windows(2).any(|w| w[1].offset < w[0].end()) {
            return Err(unusable(format!(
                "track {} stores its chunks out of decode order or overlapping; remux it first",
                t.track_id
            )));
        }
        Ok(TrackIndex {
            track_id: t.track_id,
            kind: t.kind,
            timescale: t.timescale,
            edits: t.edits.clone(),
            entries,
            samples,
            has_sdtp: sdtp.is_some(),
            groups,
        })
    }

    /// The samples of track `i`'s tables, each table chunk a piece.
    fn table_samples(
        &mut self,
        i: usize,
        t: &Mp4Track,
        table: &SampleTable,
        entries: usize,
        byte_size: Option<u32>,
        sdtp: Option<&[u8]>,
    ) -> Result<Vec<Sample>, AppendError> {
        let (mp4, unusable) = (mp4(self.name), unusable(self.name));
        let len = self.data.len;
        let mut samples = Vec::with_capacity(table.sample_count as usize);
        let mut cursor = SampleCursor::default();
        let mut chunk = usize::MAX;
        while let Some(s) = cursor.next(table) {
            let s = s.map_err(&mp4)?;
            let desc = s.description;
            if desc == 0 || desc as usize > entries {
                return Err(unusable(format!(
                    "track {}: sample {} uses sample description {desc}, but 'stsd' has {entries}",
                    t.track_id, s.index,
                )));
            }
            let cts = i32::try_from(s.cts_offset).map_err(|_| {
                unusable(format!("track {}: composition offset {} too large", t.track_id, s.cts_offset))
            })?;
            let bytes = byte_size.unwrap_or(s.size) as u64;
            if s.offset.checked_add(bytes).is_none_or(|end| end > len) {
                return Err(unusable(format!(
                    "track {}: sample {} at offset {} ({bytes} bytes) runs past the end of the file ({len} bytes): \
                     the file is cut short or its tables are damaged",
                    t.track_id, s.index, s.offset
                )));
            }
            let index = samples.len();
            if cursor.chunk() != chunk {
                chunk = cursor.chunk();
                self.pieces.push(Piece {
                    track: i,
                    offset: s.offset,
                    len: 0,
                    first: index,
                    count: 0,
                    desc: desc as u16,
                });
            }
            let p = self.pieces.last_mut().expect("a piece is open");
            p.len += bytes;
            p.count += 1;
            samples.push(Sample {
                size: s.size,
                duration: s.duration,
                cts,
                desc: desc as u16,
                sync: s.sync,
                sdtp: sdtp.and_then(|d| d.get(index).copied()).unwrap_or(0),
            });
        }
        Ok(samples)
    }

    /// The samples of every complete fragment, each fragment a chunk (pushed on `chunks`).
    /// A fragment that points past the end of the file ends the input, with a note.
    fn fragments(
        &mut self,
        movie: &Movie,
        tracks: &mut [TrackIndex],
        chunks: &mut Vec<Range<usize>>,
    ) -> Result<(), AppendError> {
        let (mp4, unusable) = (mp4(self.name), unusable(self.name));
        let data = self.data;
        let mut next_dts: Vec<i64> = tracks.iter().map(|t| t.samples.iter().map(|s| s.duration as i64).sum()).collect();
        let mut dts: Vec<Vec<i64>> = vec![Vec::new(); tracks.len()];
        for (n, (offset, hl, moof)) in data.moofs.iter().enumerate() {
            let frag = parse_moof(moof, *offset, *hl, movie, &mut next_dts).map_err(&mp4)?;
            if frag.iter().any(|s| s.info.offset.checked_add(s.info.size as u64).is_none_or(|e| e > data.len)) {
                self.notes.push(format!(
                    "{}: fragment {n} at offset {offset} points past the end of the file (cut short); it and what \
                     follows are left out",
                    self.name
                ));
                break;
            }
            let from = self.pieces.len();
            for s in &frag {
                let t = &mut tracks[s.track];
                let desc = s.info.description;
                if desc == 0 || desc as usize > t.entries.len() {
                    return Err(unusable(format!(
                        "fragment at offset {offset}: track {} uses sample description {desc}, but 'stsd' has {}",
                        t.track_id,
                        t.entries.len()
                    )));
                }
                if t.samples.len() >= MAX_TRACK_SAMPLES || self.total_samples >= MAX_INPUT_SAMPLES {
                    return Err(unusable(format!(
                        "track {} has over {MAX_TRACK_SAMPLES} samples, or the input over {MAX_INPUT_SAMPLES}, the \
                         limits",
                        t.track_id
                    )));
                }
                self.total_samples += 1;
                let cts = i32::try_from(s.info.cts_offset).map_err(|_| {
                    unusable(format!("track {}: composition offset {} too large", t.track_id, s.info.cts_offset))
                })?;
                let index = t.samples.len();
                push_piece(&mut self.pieces, from, s.track, s.info.offset, s.info.size as u64, index, desc as u16);
                t.samples.push(Sample {
                    size: s.info.size,
                    duration: s.info.duration,
                    cts,
                    desc: desc as u16,
                    sync: s.info.sync,
                    sdtp: 0,
                });
                dts[s.track].push(s.info.dts);
            }
            if self.pieces.len() > from {
                chunks.push(from..self.pieces.len());
            }
        }
        // Decode times come from tfdt: a duration that disagrees with the next sample's
        // decode time (a gap between fragments, a muxer's rounding) follows the decode times.
        for (t, dts) in tracks.iter_mut().zip(&dts) {
            let first = t.samples.len() - dts.len();
            for (k, w) in dts.windows(2).enumerate() {
                if let Some(d) = w[1].checked_sub(w[0]).and_then(|d| u32::try_from(d).ok()).filter(|&d| d > 0) {
                    t.samples[first + k].duration = d;
                }
            }
        }
        Ok(())
    }

    /// A track's last sample of no duration gets the one before it.
    fn last_durations(&mut self, tracks: &mut [TrackIndex]) {
        for t in tracks {
            let n = t.samples.len();
            if n >= 2 && t.samples[n - 1].duration == 0 {
                t.samples[n - 1].duration = t.samples[n - 2].duration;
                self.notes.push(format!(
                    "{}: track {} ends with a sample of no duration; it is given the one before it",
                    self.name, t.track_id
                ));
            }
        }
    }
}

impl InputIndex {
    /// Indexes an input. `name` names it in messages.
    pub fn build(data: &InputData, name: &str) -> Result<InputIndex, AppendError> {
        let (mp4, unusable) = (mp4(name), unusable(name));
        let Some((moov_offset, moov_hl, moov)) = &data.moov else {
            return Err(unusable(
                "no 'moov' box: not a complete MP4 (a crashed recording can be rebuilt with 'livemux recover')".into(),
            ));
        };
        let movie: Movie = parse_movie(moov, *moov_offset, *moov_hl).map_err(&mp4)?;
        if movie.tracks.is_empty() {
            return Err(unusable("the movie has no track".into()));
        }
        if let Some(why) = movie.tracks.iter().enumerate().find_map(|(i, t)| t.encryption_refusal(i + 1)) {
            return Err(unusable(why));
        }
        let root = Reader::new(&moov[*moov_hl as usize..], moov_offset + *moov_hl as u64, FourCc::new(b"moov"));
        let mut traks = Vec::new();
        for c in root.children() {
            let c = c.map_err(&mp4)?;
            if c.fourcc.0 == *b"trak" {
                traks.push(c);
            }
        }
        let mut ix = Indexer { data, name, pieces: Vec::new(), total_samples: 0, notes: Vec::new() };
        let mut tracks = Vec::with_capacity(traks.len());
        for (i, (trak, t)) in traks.iter().zip(&movie.tracks).enumerate() {
            tracks.push(ix.table_track(i, trak, t)?);
        }
        // Table chunks of all tracks in file order: each is a chunk of its own.
        ix.pieces.sort_by_key(|p| (p.offset, p.track));
        let mut chunks: Vec<Range<usize>> = (0..ix.pieces.len()).map(|i| i..i + 1).collect();
        if movie.fragmented {
            ix.fragments(&movie, &mut tracks, &mut chunks)?;
        }
        ix.last_durations(&mut tracks);
        let Indexer { pieces, notes, .. } = ix;
        let referenced_end = pieces.iter().map(Piece::end).max().unwrap_or(0);
        if referenced_end > data.len {
            let p = pieces.iter().find(|p| p.end() > data.len).expect("one piece ends there");
            return Err(unusable(format!(
                "track {} has samples at offset {} to {}, past the end of the file ({} bytes): the file is cut short",
                tracks[p.track].track_id,
                p.offset,
                p.end(),
                data.len
            )));
        }
        Ok(InputIndex {
            name: name.to_string(),
            movie_timescale: movie.timescale,
            tracks,
            pieces,
            chunks,
            fragmented: movie.fragmented,
            referenced_end,
            ftyp: data.ftyp.clone(),
            moov: moov.clone(),
            moov_offset: *moov_offset,
            moov_header_len: *moov_hl,
            notes,
        })
    }

    /// The samples of track `t` in chunks `chunks`, as a range of its samples (chunks hold
    /// each track's samples in decode order, so a run of chunks is a run of samples).
    pub fn sample_range(&self, chunks: &Range<usize>, track: usize) -> Range<usize> {
        let mut it = self.chunks[chunks.clone()].iter().flat_map(|c| self.pieces[c.clone()].iter());
        let mut range: Option<Range<usize>> = None;
        for p in it.by_ref().filter(|p| p.track == track) {
            range = Some(match range {
                None => p.samples(),
                Some(r) => r.start.min(p.first)..r.end.max(p.first + p.count),
            });
        }
        range.unwrap_or_else(|| {
            // No sample of this track in the selection: an empty range where it would start.
            let before = self.chunks[..chunks.start]
                .iter()
                .flat_map(|c| self.pieces[c.clone()].iter())
                .filter(|p| p.track == track)
                .map(|p| p.first + p.count)
                .max()
                .unwrap_or(0);
            before..before
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const CHROME: &[u8] = include_bytes!("../../../../samples/chrome_mp4_avc1_opus.mp4");

    fn build(bytes: &[u8]) -> InputIndex {
        let data = InputData::read(&mut Cursor::new(bytes), bytes.len() as u64).unwrap();
        InputIndex::build(&data, "in").unwrap()
    }

    #[test]
    fn fragments_are_chunks_and_a_cut_one_is_left_out() {
        let index = build(CHROME);
        assert!(index.fragmented);
        assert_eq!(index.chunks.len(), 2);
        // One piece per track and fragment: each trun's samples are contiguous.
        assert_eq!(index.pieces.len(), 4);
        assert_eq!(index.sample_range(&(1..2), 0).start, index.sample_range(&(0..1), 0).end);
        assert_eq!(index.referenced_end, CHROME.len() as u64);
        let cut = build(&CHROME[..CHROME.len() - 1000]);
        assert_eq!(cut.chunks.len(), 1);
        assert!(cut.notes.iter().any(|n| n.contains("cut short")), "{:?}", cut.notes);
    }

    #[test]
    fn fragment_durations_follow_decode_times() {
        let plain = build(CHROME);
        // Move the second fragment's video 1 s later: the sample before it lasts 1 s longer.
        let mut bytes = CHROME.to_vec();
        let tfdts: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| w == b"tfdt").map(|(i, _)| i).collect();
        let at = tfdts[2] + 8;
        let v = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()) + 20_000;
        bytes[at..at + 8].copy_from_slice(&v.to_be_bytes());
        let moved = build(&bytes);
        let first = plain.sample_range(&(0..1), 0);
        let (a, b) = (&plain.tracks[0].samples, &moved.tracks[0].samples);
        assert_eq!(b[first.end - 1].duration, a[first.end - 1].duration + 20_000);
        assert_eq!(a[..first.end - 1], b[..first.end - 1]);
    }

    #[test]
    fn sample_group_runs_cover_any_range() {
        let g =
            SampleGroup { grouping_type: *b"roll", parameter: None, sgpd: None, runs: vec![(3, 1), (2, 0), (4, 2)] };
        assert_eq!(g.runs_for(0..9), [(3, 1), (2, 0), (4, 2)]);
        assert_eq!(g.runs_for(2..7), [(1, 1), (2, 0), (2, 2)]);
        assert_eq!(g.runs_for(5..12), [(4, 2), (3, 0)]);
        assert_eq!(g.runs_for(4..4), []);
    }
}
