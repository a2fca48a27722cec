//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), shared with the regression
//! test `tests/fuzz_regressions.rs` so that a saved input runs through exactly the code
//! that found it. Not part of the supported API.
//!
//! Each entry takes arbitrary bytes and drives the sans-IO readers, splitters, scanners and
//! finalizers directly (no tokio, no files), the way the stages do. An entry returns
//! normally whatever the input; any panic is a bug. Work per input is bounded by the
//! parsers' own limits plus the caps below, so that a slow input means a slow parser.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::codecs::{aac, av1, h264, hevc, inband, opus, poc, vp9, CodecConfig};
use crate::formats::matroska::block::parse_block;
use crate::formats::matroska::demux::MkvSplitter;
use crate::formats::matroska::mux::MkvMuxer;
use crate::formats::matroska::reader::{elements, MkvItem, MkvReader};
use crate::formats::matroska::tracks::{parse_tracks, SegmentInfo};
use crate::formats::matroska::{finalize as mkv_finalize, ids};
use crate::formats::mp4::boxes::{parse_header, HeaderParse};
use crate::formats::mp4::demux::Mp4Splitter;
use crate::formats::mp4::fmp4::Fmp4Muxer;
use crate::formats::mp4::moof::parse_moof;
use crate::formats::mp4::moov::{parse_movie, Movie};
use crate::formats::mp4::scan::layout::ScanLayout;
use crate::formats::mp4::scan::MdatScanner;
use crate::formats::mp4::walker::Mp4Walker;
use crate::formats::mp4::{finalize as mp4_finalize, FourCc};
use crate::formats::{ContainerEvent, ContainerKind, ElementKind, FinalizePlan, Muxer, PacketEvent};
use crate::model::{Chunk, ParamOrigin, Track, TrackKind};
use crate::pipeline::{Override, Pipeline};

/// Media bytes the MP4 splitter may hold while waiting for an index (the default is 1 GiB,
/// far more than a fuzz input).
const SPLIT_BUFFER_LIMIT: u64 = 16 << 20;
/// Samples of each sample table walked by [`mp4_moov`].
const MAX_TABLE_SAMPLES: usize = 100_000;
/// Packets fed to a muxer per input.
const MAX_MUXED_PACKETS: usize = 10_000;
/// How far past the end of the file a finalize plan may write before the in-memory copy
/// stops following it (a plan that appends gigabytes is reported by the parser's limits,
/// not by this harness running out of memory).
const MAX_PLAN_GROWTH: u64 = 64 << 20;

/// A fuzz entry: takes any bytes, never panics.
pub type Entry = fn(&[u8]);

/// Every target: its name (the file in `fuzz/fuzz_targets/` and the directory under
/// `tests/fuzz_regressions/`) and its entry.
pub const TARGETS: &[(&str, Entry)] = &[
    ("mp4_walker", mp4_walker),
    ("mp4_demux", mp4_demux),
    ("mp4_moov", mp4_moov),
    ("mp4_moof", mp4_moof),
    ("mp4_finalize", mp4_finalize),
    ("mp4_scan", mp4_scan),
    ("mkv_reader", mkv_reader),
    ("mkv_finalize", mkv_finalize),
    ("codec_avcc", codec_avcc),
    ("codec_hvcc", codec_hvcc),
    ("codec_av1c", codec_av1c),
    ("codec_vpcc", codec_vpcc),
    ("codec_aac", codec_aac),
    ("codec_opus", codec_opus),
    ("pipeline_file", pipeline_file),
];

/// The entry of the target named `name`.
pub fn entry(name: &str) -> Option<Entry> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Splits the input into 1 to 5 pieces (chosen by its length), pushed one at a time, so
/// that every reader also meets its input cut at arbitrary places.
fn pieces(data: &Bytes) -> Vec<(u64, Bytes)> {
    let n = 1 + data.len() % 5;
    let size = data.len().div_ceil(n).max(1);
    (0..data.len()).step_by(size).map(|at| (at as u64, data.slice(at..(at + size).min(data.len())))).collect()
}

/// Feeds packet events to a muxer, created at the first track list.
struct MuxDriver {
    muxer: Option<Box<dyn Muxer>>,
    make: fn(crate::model::TrackSet) -> Box<dyn Muxer>,
    packets: usize,
    failed: bool,
}

impl MuxDriver {
    fn new(make: fn(crate::model::TrackSet) -> Box<dyn Muxer>) -> Self {
        MuxDriver { muxer: None, make, packets: 0, failed: false }
    }

    fn take(&mut self, events: &mut Vec<PacketEvent>) {
        for ev in events.drain(..) {
            if self.failed {
                continue;
            }
            let result = match ev {
                PacketEvent::Tracks(tracks) => {
                    if self.muxer.is_none() {
                        let mut m = (self.make)(tracks);
                        self.failed = m.header().is_err();
                        self.muxer = Some(m);
                    }
                    Ok(())
                }
                PacketEvent::Packets(packets) => match &mut self.muxer {
                    Some(m) => {
                        packets.into_iter().take(MAX_MUXED_PACKETS.saturating_sub(self.packets)).try_for_each(|p| {
                            self.packets += 1;
                            m.push(p).map(drop)
                        })
                    }
                    None => Ok(()),
                },
                PacketEvent::Boundary => self.muxer.as_mut().map_or(Ok(()), |m| m.boundary().map(drop)),
                PacketEvent::End(_) => Ok(()),
            };
            self.failed |= result.is_err();
        }
    }

    fn finish(mut self) {
        if let (Some(m), false) = (&mut self.muxer, self.failed) {
            let _ = m.finish();
            let _ = m.notes();
        }
    }
}

fn fmp4_muxer(tracks: crate::model::TrackSet) -> Box<dyn Muxer> {
    Box::new(Fmp4Muxer::new(tracks, Default::default()))
}

fn mkv_muxer(tracks: crate::model::TrackSet) -> Box<dyn Muxer> {
    Box::new(MkvMuxer::new(tracks, Default::default(), false))
}

/// The tracks of a movie as `codecpar-extract` makes them from the stream alone, except
/// that parameters that do not parse are carried as unknown instead of refused.
fn movie_tracks(movie: &Movie) -> Vec<Track> {
    movie
        .tracks
        .iter()
        .filter(|t| t.kind != TrackKind::Other)
        .map(|t| {
            let codec = t.codec.clone().and_then(|c| c.validate().map(|_| c)).unwrap_or(CodecConfig::Unknown {
                fourcc: t.sample_entry_fourcc.0,
                dims: t.dims,
                audio: None,
            });
            t.to_track(movie.timescale, codec, ParamOrigin::Stream)
        })
        .collect()
}

/// The MP4 walker alone: every event of an input pushed in pieces.
pub fn mp4_walker(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let mut walker = Mp4Walker::new();
    for (offset, piece) in pieces(&data) {
        if walker.push(Chunk { offset, data: piece }).is_err() {
            return;
        }
        loop {
            match walker.poll() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = walker.finish();
}

/// The MP4 walker, the splitter (sample tables or fragments) and a Matroska muxer, as
/// `remux` runs them on an MP4 input.
pub fn mp4_demux(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let mut walker = Mp4Walker::new();
    let mut splitter = Mp4Splitter::new(SPLIT_BUFFER_LIMIT);
    let mut mux = MuxDriver::new(mkv_muxer);
    let mut out = Vec::new();
    let mut have_tracks = false;
    let mut handle = |ev: ContainerEvent, have_tracks: &mut bool, out: &mut Vec<PacketEvent>| -> bool {
        if let ContainerEvent::Meta(m) = &ev {
            if !*have_tracks && m.kind == ElementKind::Mp4(FourCc::new(b"moov")) {
                let Ok(movie) = parse_movie(&m.data, m.offset, m.header_len) else { return false };
                let tracks = movie_tracks(&movie);
                if tracks.is_empty() {
                    return false;
                }
                *have_tracks = true;
                if splitter.handle(ContainerEvent::Tracks(Arc::new(tracks.into())), out).is_err() {
                    return false;
                }
            }
        }
        splitter.handle(ev, out).is_ok()
    };
    if !handle(ContainerEvent::Container(ContainerKind::Mp4), &mut have_tracks, &mut out) {
        return;
    }
    for (offset, piece) in pieces(&data) {
        if walker.push(Chunk { offset, data: piece }).is_err() {
            return;
        }
        loop {
            match walker.poll() {
                Ok(Some(ev)) => {
                    if !handle(ev, &mut have_tracks, &mut out) {
                        return;
                    }
                    mux.take(&mut out);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if splitter.finish(walker.finish(), &mut out).is_ok() {
        mux.take(&mut out);
        mux.finish();
    }
}

/// Wraps a box body in a header of type `fourcc`.
fn boxed(fourcc: &[u8; 4], body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 16);
    match u32::try_from(body.len() + 8) {
        Ok(size) => out.extend_from_slice(&size.to_be_bytes()),
        Err(_) => out.extend_from_slice(&0u32.to_be_bytes()),
    }
    out.extend_from_slice(fourcc);
    out.extend_from_slice(body);
    out.into()
}

/// A `moov` body: tracks, sample entries, codec parameters, sample tables, and the
/// regular `moov` a finalize would make of it.
pub fn mp4_moov(data: &[u8]) {
    let moov = boxed(b"moov", data);
    let Ok(movie) = parse_movie(&moov, 0, 8) else { return };
    for t in &movie.tracks {
        let _ = t.describe();
        let _ = t.table.total_duration();
        for s in t.table.samples().take(MAX_TABLE_SAMPLES) {
            if s.is_err() {
                break;
            }
        }
        if let Ok(c) = &t.codec {
            let _ = c.validate();
        }
    }
    let _ = movie_tracks(&movie);
    // As `livemux finalize` reads it: from a file that holds just this box.
    let len = moov.len() as u64;
    if let Ok(index) = mp4_finalize::FragmentIndex::in_file(moov, 0, 8, len) {
        let _ = index.final_moov();
        let _ = index.notes();
    }
}

/// Top-level boxes of `data`, whole, as (offset, header, bytes); stops at the first that
/// does not parse or runs past the end.
fn top_boxes(data: &Bytes) -> Vec<(u64, u32, FourCc, Bytes)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Ok(HeaderParse::Header(h)) = parse_header(&data[at..], at as u64) {
        let size = h.size.unwrap_or((data.len() - at) as u64);
        let Some(end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)).filter(|&e| e <= data.len()) else {
            break;
        };
        out.push((at as u64, h.header_len, h.fourcc, data.slice(at..end)));
        if end == at {
            break;
        }
        at = end;
    }
    out
}

/// A fragmented MP4's boxes (a `moov`, then `moof`s; other boxes are passed over): each
/// `moof` read with the `moov`, as the splitter and a finalize read them.
pub fn mp4_moof(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let boxes = top_boxes(&data);
    let Some((offset, header_len, _, moov)) = boxes.iter().find(|b| b.2 == FourCc::new(b"moov")).cloned() else {
        return;
    };
    let Ok(movie) = parse_movie(&moov, offset, header_len) else { return };
    let mut next_dts = vec![0i64; movie.tracks.len()];
    let mut index = mp4_finalize::FragmentIndex::in_file(moov, offset, header_len, data.len() as u64).ok();
    for (offset, header_len, fourcc, moof) in &boxes {
        if *fourcc != FourCc::new(b"moof") {
            continue;
        }
        if parse_moof(moof, *offset, *header_len, &movie, &mut next_dts).is_err() {
            continue;
        }
        if let Some(ix) = &mut index {
            if let Ok(samples) = ix.parse_fragment(moof, *offset, *header_len) {
                let _ = ix.add(&samples);
            }
        }
    }
    if let Some(ix) = index {
        let _ = ix.final_moov();
    }
}

/// Applies a finalize plan to an in-memory copy of the file, letting it grow by at most
/// [`MAX_PLAN_GROWTH`]. Whether the plan stayed in range.
fn apply(file: &mut Vec<u8>, plan: &FinalizePlan) -> bool {
    let max_len = (file.len() as u64).saturating_add(MAX_PLAN_GROWTH);
    crate::io::try_apply_in_memory(file, &[], &plan.steps, max_len).is_ok()
}

/// `livemux finalize` of an MP4 held in memory: the plan, applied, then planned again on
/// the result (a finished file is read as a regular one).
pub fn mp4_finalize(data: &[u8]) {
    let Ok(plan) = mp4_finalize::plan(&mut Cursor::new(data), data.len() as u64) else { return };
    let mut file = data.to_vec();
    if apply(&mut file, &plan) {
        let _ = mp4_finalize::plan(&mut Cursor::new(&file), file.len() as u64);
    }
}

/// `livemux finalize` of a Matroska file held in memory: scan, plan, apply, scan again.
pub fn mkv_finalize(data: &[u8]) {
    fn scan(data: &Bytes) -> Option<mkv_finalize::Scanned> {
        let mut scanner = mkv_finalize::Scanner::new();
        for (_, piece) in pieces(data) {
            scanner.push(piece).ok()?;
        }
        scanner.finish().ok()
    }
    let data = Bytes::copy_from_slice(data);
    let Some(mkv_finalize::Scanned::Found { front, index, input_len }) = scan(&data) else { return };
    let _ = mkv_finalize::cues(&index, 0);
    let Ok(Ok(plan)) = mkv_finalize::plan_in_place(&front, &index, input_len) else { return };
    let mut file = data.to_vec();
    if apply(&mut file, &plan) {
        let _ = scan(&Bytes::from(file));
    }
}

/// The Matroska reader, Info/Tracks and block parsing (lacing included), the splitter and
/// a fragmented-MP4 muxer, as `remux` runs them on a Matroska input.
pub fn mkv_reader(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    // As `probe` reads it: skipping damaged stretches.
    let mut reader = MkvReader::resynchronising();
    let mut splitter = MkvSplitter::new();
    let mut mux = MuxDriver::new(fmp4_muxer);
    let mut info = SegmentInfo::default();
    let mut out = Vec::new();
    let mut have_tracks = false;
    if splitter.handle(ContainerEvent::Container(ContainerKind::Matroska), &mut out).is_err() {
        return;
    }
    for (_, piece) in pieces(&data) {
        reader.push(piece);
        loop {
            let item = match reader.poll() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => return,
            };
            let mut tracks = None;
            match &item {
                MkvItem::Meta(e) if e.id == ids::INFO => {
                    let Ok(i) = SegmentInfo::parse(e.body(), e.body_offset()) else { return };
                    info = i;
                }
                MkvItem::Meta(e) if e.id == ids::TRACKS && !have_tracks => {
                    let Ok(entries) = parse_tracks(e.body(), e.body_offset()) else { return };
                    let set: Vec<Track> = entries
                        .iter()
                        .filter(|t| t.kind() != TrackKind::Other)
                        .map(|t| {
                            let codec = t.codec(None).unwrap_or(CodecConfig::Unknown {
                                fourcc: *b"????",
                                dims: None,
                                audio: None,
                            });
                            t.to_track(&info, codec)
                        })
                        .collect();
                    have_tracks = true;
                    tracks = Some(set);
                }
                MkvItem::Blocks { offset, data } => {
                    for e in elements(*offset, data) {
                        let Ok(e) = e else { break };
                        let _ = parse_block(&e);
                    }
                }
                _ => {}
            }
            if splitter.handle(item.into_event(), &mut out).is_err() {
                return;
            }
            if let Some(set) = tracks {
                if splitter.handle(ContainerEvent::Tracks(Arc::new(set.into())), &mut out).is_err() {
                    return;
                }
            }
            mux.take(&mut out);
        }
    }
    let _ = splitter.finish(reader.finish(), &mut out);
    mux.take(&mut out);
    mux.finish();
}

/// References for [`mp4_scan`]: one-second recordings in `tests/fixtures/tools/`.
const SCAN_REFERENCES: [&str; 2] = ["h264_aac_reference_1s.mp4", "hevc_aac_reference_1s.mov"];

/// The layouts of [`SCAN_REFERENCES`], read once per process with the same code as
/// `--reference` (a reference is read from a file; the fixtures are found through the
/// crate's directory, fixed at build time).
fn scan_layouts() -> &'static [ScanLayout] {
    static LAYOUTS: OnceLock<Vec<ScanLayout>> = OnceLock::new();
    LAYOUTS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools");
        SCAN_REFERENCES
            .iter()
            .map(|name| {
                let reference = crate::reference::Reference::load(&dir.join(name))
                    .unwrap_or_else(|e| panic!("fuzz reference {name}: {e}"));
                crate::formats::params::unindexed_tracks(&reference)
                    .unwrap_or_else(|e| panic!("fuzz reference {name}: {e}"))
                    .1
            })
            .collect()
    })
}

/// The moov-less scanner with a reference's layout. The first byte chooses the reference
/// (bit 0: H.264 or HEVC) and whether the media box's end is known (bit 1); the rest is
/// the media box's payload.
pub fn mp4_scan(data: &[u8]) {
    let Some((&select, media)) = data.split_first() else { return };
    let layouts = scan_layouts();
    let layout = &layouts[select as usize % layouts.len()];
    let mut scanner = MdatScanner::new(layout.clone());
    let mut packets = Vec::new();
    let start = 48u64;
    let end = (select & 2 != 0).then_some(start + media.len() as u64);
    if scanner.media_start(start, end, &mut packets).is_err() {
        return;
    }
    let media = Bytes::copy_from_slice(media);
    for (offset, piece) in pieces(&media) {
        if scanner.push(start + offset, &piece, &mut packets).is_err() {
            return;
        }
        packets.clear();
    }
    let _ = scanner.finish(&mut packets);
}

/// Length-prefixed NAL units of `data` (4-byte prefixes), as slices, up to the first that
/// does not fit.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    h264::length_prefixed(data, 4).map_while(Result::ok).collect()
}

/// avcC, H.264 SPS/PPS and slice headers: the record and its parameter sets, the input as
/// a bare SPS, and the input as an access unit under the record (picture order counts,
/// in-band parameter set comparison).
pub fn codec_avcc(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(c) = h264::AvcConfig::parse_bytes(&bytes) {
        let _ = c.dimensions();
        let _ = h264::AvcConfig::parse_bytes(&c.to_bytes());
        for sps in &c.sps {
            let _ = h264::parse_sps(sps);
        }
        let _ = h264::AvcConfig::from_parameter_sets(&c.sps, &c.pps);
    }
    let _ = h264::parse_sps(data);
    let _ = h264::first_mb_in_slice(data);
    let one = std::slice::from_ref(&bytes);
    let _ = h264::AvcConfig::from_parameter_sets(one, one);
    let mut annexb = bytes::BytesMut::new();
    h264::annexb_to_length_prefixed(data, &mut annexb);
    let reference = scan_avcc();
    if let Ok(mut state) = poc::H264PocState::from_avcc(reference) {
        let _ = state.picture(&nal_units(data));
    }
    if let Ok(mut state) = poc::H264PocState::from_avcc(data) {
        let _ = state.picture(&[data]);
    }
    let config = CodecConfig::H264 { avcc: Bytes::from_static(reference), dims: Default::default() };
    let _ = inband::disagreement(&config, data);
}

/// The reference's avcC (a valid record under which to read input access units).
fn scan_avcc() -> &'static [u8] {
    static AVCC: OnceLock<Bytes> = OnceLock::new();
    AVCC.get_or_init(|| config_of(|c| matches!(c, CodecConfig::H264 { .. })))
}

/// The reference's hvcC.
fn scan_hvcc() -> &'static [u8] {
    static HVCC: OnceLock<Bytes> = OnceLock::new();
    HVCC.get_or_init(|| config_of(|c| matches!(c, CodecConfig::Hevc { .. })))
}

fn config_of(pick: fn(&CodecConfig) -> bool) -> Bytes {
    use crate::formats::mp4::scan::layout::Framing;
    for layout in scan_layouts() {
        for t in &layout.tracks {
            if let Framing::Nal { config, .. } = &t.framing {
                if pick(config) {
                    match config {
                        CodecConfig::H264 { avcc, .. } => return avcc.clone(),
                        CodecConfig::Hevc { hvcc, .. } => return hvcc.clone(),
                        _ => {}
                    }
                }
            }
        }
    }
    Bytes::new()
}

/// hvcC, HEVC VPS/SPS/PPS and slice segment headers, as [`codec_avcc`] for H.264.
pub fn codec_hvcc(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(c) = hevc::HvcConfig::parse_bytes(&bytes) {
        let _ = c.dimensions();
        let _ = c.missing_parameter_sets();
        let _ = hevc::HvcConfig::parse_bytes(&c.to_bytes());
        let units = |t: u8| c.units(t).cloned().collect::<Vec<_>>();
        for sps in units(33) {
            let _ = hevc::parse_sps(&sps);
        }
        let _ = hevc::HvcConfig::from_parameter_sets(&units(32), &units(33), &units(34));
    }
    let _ = hevc::parse_sps(data);
    let _ = hevc::first_slice_segment_in_pic(data);
    let one = std::slice::from_ref(&bytes);
    let _ = hevc::HvcConfig::from_parameter_sets(one, one, one);
    let reference = scan_hvcc();
    if let Ok(mut state) = poc::HevcPocState::from_hvcc(reference) {
        let _ = state.picture(&nal_units(data));
    }
    if let Ok(mut state) = poc::HevcPocState::from_hvcc(data) {
        let _ = state.picture(&[data]);
    }
    let config = CodecConfig::Hevc { hvcc: Bytes::from_static(reference), dims: Default::default() };
    let _ = inband::disagreement(&config, data);
}

/// av1C and AV1 OBUs: the record, sequence headers, temporal units.
pub fn codec_av1c(data: &[u8]) {
    if let Ok(c) = av1::Av1Config::parse(data) {
        let _ = c.dimensions();
        let _ = av1::Av1Config::parse_bytes(&c.to_bytes());
        let _ = c.sequence_header_obu();
        let config = CodecConfig::Av1 { av1c: c.to_bytes(), dims: Default::default() };
        let _ = inband::disagreement(&config, data);
    }
    let _ = av1::read_leb128(data);
    let _ = av1::parse_obu(data);
    for obu in av1::obus(data).take(1000) {
        if obu.is_err() {
            break;
        }
    }
    if let Some(range) = av1::sequence_header_from_obus(data) {
        let _ = av1::config_from_sequence_header(&data[range.clone()]);
        let _ = av1::dimensions_from_sequence_header(&data[range]);
    }
    let _ = av1::parse_sequence_header(data);
    let _ = av1::config_from_sequence_header(data);
    let _ = av1::is_keyframe(data);
}

/// vpcC and VP9 frames: the record, superframe indexes, keyframe headers.
pub fn codec_vpcc(data: &[u8]) {
    if let Ok(c) = vp9::VpcConfig::parse(data) {
        let _ = vp9::VpcConfig::parse_bytes(&c.to_bytes());
    }
    if let Some(frames) = vp9::superframe_index(data) {
        for r in frames {
            if let Some(frame) = data.get(r) {
                let _ = vp9::is_keyframe(frame);
            }
        }
    }
    let _ = vp9::is_keyframe(data);
    if let Ok((c, _)) = vp9::config_from_keyframe(data) {
        let _ = vp9::VpcConfig::parse_bytes(&c.to_bytes());
    }
}

/// esds, AudioSpecificConfig, ADTS headers and raw AAC frame starts.
pub fn codec_aac(data: &[u8]) {
    if let Ok(asc) = aac::AudioSpecificConfig::parse(data) {
        let _ = asc.audio_format();
    }
    let _ = aac::esds_object_type_indication(data);
    if let Ok(range) = aac::esds_decoder_specific_info(data) {
        if let Some(asc) = data.get(range) {
            let _ = aac::AudioSpecificConfig::parse(asc);
        }
    }
    if let Ok(Some(h)) = aac::AdtsHeader::parse(data) {
        let _ = aac::AudioSpecificConfig::parse(&h.to_audio_specific_config());
    }
    for (channels, sf_index) in [(1, 3), (2, 4)] {
        if let Some(a) = aac::raw_frame_start(data, channels, sf_index) {
            let _ = a.may_precede(&a);
        }
    }
    let _ = aac::raw_frame_can_end(data);
}

/// dOps, OpusHead and Opus packet TOCs.
pub fn codec_opus(data: &[u8]) {
    if let Ok(h) = opus::OpusHead::from_dops(data) {
        let _ = h.validate();
        let _ = opus::OpusHead::from_opus_head(&h.to_opus_head());
        let _ = opus::OpusHead::from_dops(&h.to_dops());
    }
    if let Ok(h) = opus::OpusHead::from_opus_head(data) {
        let _ = opus::OpusHead::from_dops(&h.to_dops());
    }
    let _ = opus::packet_duration_48k(data);
}

/// A pipeline file: parsed, checked, and its errors rendered as `livemux validate` shows
/// them. A first line of the form `# STAGE.KEY=VALUE` is also given as a `--set`.
pub fn pipeline_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let overrides: Vec<Override> =
        text.lines().next().and_then(|l| l.strip_prefix("# ")).and_then(|l| l.parse().ok()).into_iter().collect();
    if let Err(e) = Pipeline::parse(text, "fuzz.toml", &overrides) {
        // The rendering is the command line's (it needs the `cli` feature's miette).
        #[cfg(feature = "cli")]
        let _ = e.render(crate::pipeline::MAX_RENDERED_ERRORS);
        let _ = e;
    }
}
