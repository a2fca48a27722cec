//! The `moov` box: tracks, codec parameters (sample entries) and sample tables.

use bytes::Bytes;

use super::boxes::{find_child, FourCc, Mp4Error, Reader, MAX_DEPTH, MAX_TRACKS};
use super::meta;
use super::sample_table::SampleTable;
use crate::codecs::{self, AudioCodec, AudioFormat, CodecConfig, CodecError, Dimensions};
use crate::model::{Edit, MovieMeta, TrackKind, TrackMeta};

/// Per-track fragment defaults from `mvex/trex`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trex {
    pub default_sample_description_index: u32,
    pub default_sample_duration: u32,
    pub default_sample_size: u32,
    pub default_sample_flags: u32,
}

/// A track of an MP4 movie.
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Track {
    pub track_id: u32,
    pub kind: TrackKind,
    pub handler: FourCc,
    pub timescale: u32,
    pub language: [u8; 3],
    pub edits: Vec<Edit>,
    /// The first sample entry, whole (header included).
    pub sample_entry: Bytes,
    pub sample_entry_fourcc: FourCc,
    pub sample_entry_count: u32,
    /// Picture size from the visual sample entry, readable even when the codec
    /// configuration inside it is not.
    pub dims: Option<Dimensions>,
    /// The codec parameters the sample entry carries, or why they cannot be used.
    pub codec: Result<CodecConfig, CodecError>,
    pub table: SampleTable,
    pub trex: Option<Trex>,
    /// The protection scheme (`sinf/schm`: `cenc`, `cbcs`, ...) of an encrypted track
    /// (`encv`/`enca` sample entry, or any entry holding a `sinf`). Its samples cannot be
    /// passed on without their sample auxiliary information, which livemux does not carry.
    pub encryption: Option<FourCc>,
    /// Display matrix, name, pixel aspect, colour and HDR of the track.
    pub meta: TrackMeta,
}

/// A parsed `moov`.
#[derive(Clone, Debug, PartialEq)]
pub struct Movie {
    pub timescale: u32,
    pub duration: u64,
    pub tracks: Vec<Mp4Track>,
    /// `mvex` present: media follows in fragments.
    pub fragmented: bool,
    /// Title, creation time, tags and cover of the movie.
    pub meta: MovieMeta,
}

impl Movie {
    pub fn track_index(&self, track_id: u32) -> Option<usize> {
        self.tracks.iter().position(|t| t.track_id == track_id)
    }
}

/// Parses a whole `moov` box (`data` includes its header) found at absolute `offset`.
pub fn parse_movie(data: &Bytes, offset: u64, header_len: u32) -> Result<Movie, Mp4Error> {
    #[cfg(any(test, feature = "internals"))]
    crate::parse_count::count(crate::parse_count::Parsed::Moov);
    let moov = Reader::new(&data[header_len as usize..], offset + header_len as u64, FourCc::new(b"moov"));
    let mut movie =
        Movie { timescale: 1000, duration: 0, tracks: Vec::new(), fragmented: false, meta: MovieMeta::default() };
    let mut trexes = Vec::new();
    let mut movie_matrix = None;
    for child in moov.children() {
        let child = child?;
        match &child.fourcc.0 {
            b"mvhd" => {
                movie.meta.creation_time = meta::creation_time(child.body());
                movie_matrix = meta::mvhd_matrix(child.body());
                let mut r = child.reader();
                let (version, _) = r.full_header()?;
                if version == 1 {
                    r.skip(16)?;
                    movie.timescale = r.u32()?;
                    movie.duration = r.u64()?;
                } else {
                    r.skip(8)?;
                    movie.timescale = r.u32()?;
                    movie.duration = r.u32()? as u64;
                }
            }
            b"trak" => {
                if movie.tracks.len() >= MAX_TRACKS {
                    return Err(Mp4Error::TooLarge {
                        what: "track count".into(),
                        offset: child.offset,
                        size: movie.tracks.len() as u64 + 1,
                        limit: MAX_TRACKS as u64,
                    });
                }
                if let Some(track) = parse_trak(data, offset, &child.reader())? {
                    movie.tracks.push(track);
                }
            }
            b"mvex" => {
                movie.fragmented = true;
                for c in child.reader().children() {
                    let c = c?;
                    if c.fourcc.0 == *b"trex" {
                        let mut r = c.reader();
                        r.full_header()?;
                        let id = r.u32()?;
                        let trex = Trex {
                            default_sample_description_index: r.u32()?,
                            default_sample_duration: r.u32()?,
                            default_sample_size: r.u32()?,
                            default_sample_flags: r.u32()?,
                        };
                        trexes.push((id, trex));
                    }
                }
            }
            b"udta" => meta::read_movie_udta(&child.reader(), &mut movie.meta, data, offset),
            _ => {}
        }
    }
    if movie.timescale == 0 {
        // FFmpeg reads on with a default too; edit-list segment durations, the one thing
        // in movie ticks, then mean little, and writers that lose the timescale write 0
        // there ("to the end").
        movie.timescale = 1000;
    }
    // The movie's matrix applies to every track (livemux writes only track matrices).
    if let Some(m) = movie_matrix {
        for t in movie.tracks.iter_mut().filter(|t| t.kind == TrackKind::Video) {
            let unity = super::write::UNITY_MATRIX.map(|v| v as i32);
            t.meta.matrix = Some(meta::compose(&t.meta.matrix.unwrap_or(unity), &m)).filter(|c| *c != unity);
        }
    }
    for (id, trex) in trexes {
        if let Some(t) = movie.tracks.iter_mut().find(|t| t.track_id == id) {
            t.trex = Some(trex);
        }
    }
    Ok(movie)
}

/// Finds a nested box by path, e.g. `[b"mdia", b"minf", b"stbl"]`.
fn find_path<'a>(r: &Reader<'a>, path: &[&[u8; 4]]) -> Result<Option<Reader<'a>>, Mp4Error> {
    let mut cur = r.clone();
    for (depth, name) in path.iter().enumerate() {
        if depth >= MAX_DEPTH {
            return Err(r.error("boxes nested too deep"));
        }
        match find_child(&cur, name)? {
            Some(c) => cur = c.reader(),
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

fn parse_trak(src: &Bytes, src_offset: u64, trak: &Reader<'_>) -> Result<Option<Mp4Track>, Mp4Error> {
    let Some(mut tkhd) = find_path(trak, &[b"tkhd"])? else {
        return Err(trak.error("track without 'tkhd'"));
    };
    let mut track_meta =
        TrackMeta { matrix: meta::tkhd_matrix(tkhd.clone().bytes(tkhd.remaining())?), ..TrackMeta::default() };
    let (version, _) = tkhd.full_header()?;
    tkhd.skip(if version == 1 { 16 } else { 8 })?;
    let track_id = tkhd.u32()?;
    if let Some(udta) = find_path(trak, &[b"udta"])? {
        track_meta.name = meta::track_name(&udta);
    }

    let Some(mut mdhd) = find_path(trak, &[b"mdia", b"mdhd"])? else {
        return Err(trak.error(format!("track {track_id} without 'mdhd'")));
    };
    let (version, _) = mdhd.full_header()?;
    mdhd.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = mdhd.u32()?;
    if timescale == 0 {
        return Err(mdhd.error(format!("track {track_id}: timescale is 0")));
    }
    mdhd.skip(if version == 1 { 8 } else { 4 })?;
    let language = meta::mdhd_language(mdhd.u16()?);

    let Some(mut hdlr) = find_path(trak, &[b"mdia", b"hdlr"])? else {
        return Err(trak.error(format!("track {track_id} without 'hdlr'")));
    };
    hdlr.full_header()?;
    hdlr.skip(4)?;
    let handler = hdlr.fourcc()?;
    track_meta.handler_name = meta::handler_name(hdlr.clone().bytes(hdlr.remaining())?);
    let kind = match &handler.0 {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => TrackKind::Other,
    };

    let mut edits = Vec::new();
    if let Some(mut elst) = find_path(trak, &[b"edts", b"elst"])? {
        let (version, _) = elst.full_header()?;
        let count = elst.u32()?;
        let n = elst.check_entries(count as u64, if version == 1 { 20 } else { 12 }, "elst entry_count")?;
        for _ in 0..n {
            let (segment_duration_movie_ticks, media_time_ticks) =
                if version == 1 { (elst.u64()?, elst.u64()? as i64) } else { (elst.u32()? as u64, elst.i32()? as i64) };
            let media_rate_integer = elst.u16()? as i16;
            elst.skip(2)?;
            edits.push(Edit { segment_duration_movie_ticks, media_time_ticks, media_rate_integer });
        }
    }

    let Some(stbl) = find_path(trak, &[b"mdia", b"minf", b"stbl"])? else {
        return Err(trak.error(format!("track {track_id} without 'stbl'")));
    };
    let Some(stsd) = find_child(&stbl, b"stsd")? else {
        return Err(stbl.error(format!("track {track_id} without 'stsd'")));
    };
    let mut stsd_r = stsd.reader();
    stsd_r.full_header()?;
    let sample_entry_count = stsd_r.u32()?;
    let Some(entry) = stsd_r.children().next().transpose()? else {
        return Err(stsd_r.error(format!("track {track_id}: no sample entry")));
    };
    let sample_entry = src.slice(entry.range_in(src_offset));
    let codec = parse_sample_entry(&entry, kind, &sample_entry);
    let boxes = entry_boxes(&entry, kind);
    let encryption = encryption_scheme(&entry, boxes.as_ref());
    if let (TrackKind::Video, Some(r)) = (kind, &boxes) {
        meta::read_visual_boxes(r, &mut track_meta);
    }
    let dims = match kind {
        TrackKind::Video => {
            let mut r = entry.reader();
            r.skip(24).ok().and_then(|_| Some(Dimensions { width: r.u16().ok()? as u32, height: r.u16().ok()? as u32 }))
        }
        _ => None,
    };
    let mut table = SampleTable::parse(src, src_offset, &stbl)?;
    if let Ok(CodecConfig::Pcm { pcm }) = &codec {
        table.group_chunks(pcm.bytes_per_frame());
    }
    Ok(Some(Mp4Track {
        track_id,
        kind,
        handler,
        timescale,
        language,
        edits,
        sample_entry_fourcc: entry.fourcc,
        sample_entry,
        sample_entry_count,
        dims,
        codec,
        table,
        trex: None,
        encryption,
        meta: track_meta,
    }))
}

/// Sample entries of protected tracks: ISO common encryption (`encv`, `enca`, `enct`,
/// `encs`) and Apple's FairPlay (`drms`, `drmi`).
const PROTECTED_ENTRIES: [&[u8; 4]; 6] = [b"encv", b"enca", b"enct", b"encs", b"drms", b"drmi"];

/// Where a sample entry's child boxes start: after the visual header (78 bytes), or after
/// the sound header (28, 44 or 64 bytes by its version). `None` for other entries, or a
/// header cut short.
fn entry_boxes<'a>(entry: &super::boxes::Child<'a>, kind: TrackKind) -> Option<Reader<'a>> {
    let skip = match kind {
        TrackKind::Video => 78,
        TrackKind::Audio => {
            let mut r = entry.reader();
            r.skip(8).ok()?;
            match r.u16().ok()? {
                0 => 28,
                1 => 44,
                2 => 64,
                _ => return None,
            }
        }
        TrackKind::Other => return None,
    };
    let mut r = entry.reader();
    r.skip(skip).ok()?;
    Some(r)
}

/// The protection scheme of a sample entry: its `sinf/schm` (among the child boxes
/// `boxes`), or, for a protected entry type without one, `cenc` (`drm ` for FairPlay).
fn encryption_scheme(entry: &super::boxes::Child<'_>, boxes: Option<&Reader<'_>>) -> Option<FourCc> {
    let protected = PROTECTED_ENTRIES.contains(&&entry.fourcc.0);
    let sinf = boxes.and_then(|r| find_child(r, b"sinf").ok().flatten());
    let found = sinf.map(|sinf| {
        let schm = find_child(&sinf.reader(), b"schm").ok().flatten();
        let scheme = schm.and_then(|c| {
            let mut r = c.reader();
            r.full_header().ok()?;
            r.fourcc().ok()
        });
        scheme.unwrap_or(FourCc::new(b"cenc"))
    });
    match (found, protected) {
        (Some(s), _) => Some(s),
        (None, true) if entry.fourcc.0.starts_with(b"drm") => Some(FourCc::new(b"drm ")),
        (None, true) => Some(FourCc::new(b"cenc")),
        (None, false) => None,
    }
}

fn codec_err(what: &'static str, e: Mp4Error) -> CodecError {
    CodecError::Invalid { what, reason: e.to_string() }
}

/// Reads codec parameters from a sample entry. `whole` is the entry as `Bytes`, so that
/// configuration records are sliced, not copied.
pub fn parse_sample_entry(
    entry: &super::boxes::Child<'_>,
    kind: TrackKind,
    whole: &Bytes,
) -> Result<CodecConfig, CodecError> {
    let fourcc = entry.fourcc;
    let slice_of = |c: &super::boxes::Child<'_>, skip: usize| -> Bytes {
        let start = (c.offset - entry.offset) as usize + c.header_len + skip;
        let end = (c.offset - entry.offset) as usize + c.data.len();
        whole.slice(start.min(end)..end)
    };
    match kind {
        TrackKind::Video => {
            let mut r = entry.reader();
            r.skip(24).map_err(|e| codec_err("visual sample entry", e))?;
            let width = r.u16().map_err(|e| codec_err("visual sample entry", e))? as u32;
            let height = r.u16().map_err(|e| codec_err("visual sample entry", e))? as u32;
            r.skip(50).map_err(|e| codec_err("visual sample entry", e))?;
            let dims = Dimensions { width, height };
            let find = |name: &[u8; 4]| find_child(&r, name).map_err(|e| codec_err("visual sample entry", e));
            match &fourcc.0 {
                b"avc1" | b"avc3" => {
                    let c = find(b"avcC")?.ok_or_else(|| missing("avcC"))?;
                    let avcc = slice_of(&c, 0);
                    codecs::h264::AvcConfig::parse(&avcc)?;
                    Ok(CodecConfig::H264 { avcc, dims })
                }
                b"hvc1" | b"hev1" => {
                    let c = find(b"hvcC")?.ok_or_else(|| missing("hvcC"))?;
                    let hvcc = slice_of(&c, 0);
                    codecs::hevc::HvcConfig::parse(&hvcc)?;
                    Ok(CodecConfig::Hevc { hvcc, dims })
                }
                b"av01" => {
                    let c = find(b"av1C")?.ok_or_else(|| missing("av1C"))?;
                    let av1c = slice_of(&c, 0);
                    codecs::av1::Av1Config::parse(&av1c)?;
                    Ok(CodecConfig::Av1 { av1c, dims })
                }
                b"vp09" => {
                    let c = find(b"vpcC")?.ok_or_else(|| missing("vpcC"))?;
                    let vpcc = slice_of(&c, 4);
                    codecs::vp9::VpcConfig::parse(&vpcc)?;
                    Ok(CodecConfig::Vp9 { vpcc, dims })
                }
                b"vp08" => Ok(CodecConfig::Vp8 { dims }),
                _ => Ok(CodecConfig::Unknown { fourcc: fourcc.0, dims: Some(dims), audio: None }),
            }
        }
        TrackKind::Audio => parse_audio_entry(entry, &slice_of),
        TrackKind::Other => Ok(CodecConfig::Unknown { fourcc: fourcc.0, dims: None, audio: None }),
    }
}

fn audio_blob(codec: AudioCodec, config: Bytes, format: AudioFormat) -> CodecConfig {
    CodecConfig::Audio { codec, config, format }
}

fn missing(what: &'static str) -> CodecError {
    CodecError::Invalid { what, reason: "configuration box missing from the sample entry".into() }
}

fn parse_audio_entry(
    entry: &super::boxes::Child<'_>,
    slice_of: &dyn Fn(&super::boxes::Child<'_>, usize) -> Bytes,
) -> Result<CodecConfig, CodecError> {
    let mut r = entry.reader();
    let SoundDescription { channels, bits, sample_rate, lpcm_flags } = SoundDescription::read(&mut r)?;
    let fourcc = entry.fourcc.0;
    let boxes = codec_boxes(&r)?;
    let find = |name: &[u8; 4]| boxes.iter().find(|c| c.fourcc.0 == *name);
    let fallback = AudioFormat { sample_rate, channels };
    match &fourcc {
        b"mp4a" => {
            let c = find(b"esds").ok_or_else(|| missing("esds"))?;
            parse_mp4a_esds(slice_of(c, 4), fallback)
        }
        b".mp3" => Ok(audio_blob(AudioCodec::Mp3, Bytes::new(), fallback)),
        b"fLaC" => {
            let c = find(b"dfLa").ok_or_else(|| missing("dfLa"))?;
            let blocks = slice_of(c, 4);
            let info = codecs::flac::parse_blocks(&blocks)?;
            Ok(CodecConfig::Audio { codec: AudioCodec::Flac, config: blocks, format: info.audio_format() })
        }
        b"ac-3" => {
            let c = find(b"dac3").ok_or_else(|| missing("dac3"))?;
            let dac3 = slice_of(c, 0);
            let format = codecs::ac3::Dac3::parse(&dac3)?.audio_format();
            Ok(CodecConfig::Audio { codec: AudioCodec::Ac3, config: dac3, format })
        }
        b"ec-3" => {
            let c = find(b"dec3").ok_or_else(|| missing("dec3"))?;
            let dec3 = slice_of(c, 0);
            let parsed = codecs::ac3::Dec3::parse(&dec3)?.audio_format();
            let format = AudioFormat { sample_rate: parsed.sample_rate, channels: parsed.channels.max(channels) };
            Ok(CodecConfig::Audio { codec: AudioCodec::Eac3, config: dec3, format })
        }
        b"alac" => {
            let c = find(b"alac").ok_or_else(|| missing("alac"))?;
            let cookie = slice_of(c, 4);
            let format = codecs::alac::AlacConfig::parse(&cookie)?.audio_format();
            Ok(CodecConfig::Audio { codec: AudioCodec::Alac, config: cookie, format })
        }
        b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => Ok(audio_blob(AudioCodec::Dts, Bytes::new(), fallback)),
        b"Opus" => {
            let c = find(b"dOps").ok_or_else(|| missing("dOps"))?;
            let head = codecs::opus::OpusHead::from_dops(&slice_of(c, 0))?;
            Ok(CodecConfig::Opus { head })
        }
        b"ipcm" | b"fpcm" => {
            let c = find(b"pcmC").ok_or_else(|| missing("pcmC"))?;
            let pcm = codecs::pcm::PcmFormat::from_pcmc(&slice_of(c, 4), fourcc == *b"fpcm", channels, sample_rate)?;
            Ok(CodecConfig::Pcm { pcm })
        }
        b"lpcm" => codecs::pcm::PcmFormat::from_lpcm_flags(lpcm_flags, bits, channels, sample_rate)
            .map(|pcm| CodecConfig::Pcm { pcm })
            .ok_or_else(|| CodecError::Unsupported { what: "lpcm", reason: format!("flags 0x{lpcm_flags:x}") }),
        _ => {
            let enda = find(b"enda").map(|c| slice_of(c, 0));
            Ok(parse_qt_audio(fourcc, fallback, bits, enda.as_deref()))
        }
    }
}

/// The boxes of an audio sample entry (`r` at the first), with those QuickTime wraps
/// in a `wave` box in its place.
fn codec_boxes<'a>(r: &Reader<'a>) -> Result<Vec<super::boxes::Child<'a>>, CodecError> {
    let e = |err| codec_err("audio sample entry", err);
    let mut boxes = Vec::new();
    for c in r.children() {
        let c = c.map_err(e)?;
        if c.fourcc.0 == *b"wave" {
            for w in c.reader().children() {
                boxes.push(w.map_err(e)?);
            }
        } else {
            boxes.push(c);
        }
    }
    Ok(boxes)
}

/// The fields of an audio sample entry before its boxes (QuickTime sound description
/// versions 0 to 2).
struct SoundDescription {
    channels: u16,
    bits: u16,
    sample_rate: u32,
    /// Version 2's `formatSpecificFlags` (for `lpcm`), else 0.
    lpcm_flags: u32,
}

impl SoundDescription {
    /// Reads them from `r` at the start of the entry's body, leaving `r` at its boxes.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let e = |err| codec_err("audio sample entry", err);
        r.skip(8).map_err(e)?;
        let version = r.u16().map_err(e)?;
        r.skip(6).map_err(e)?;
        let mut channels = r.u16().map_err(e)?;
        let mut bits = r.u16().map_err(e)?;
        r.skip(4).map_err(e)?;
        let mut sample_rate = r.u32().map_err(e)? >> 16;
        let mut lpcm_flags = 0;
        match version {
            0 => {}
            1 => r.skip(16).map_err(e)?,
            2 => {
                r.skip(4).map_err(e)?;
                let rate = f64::from_bits(r.u64().map_err(e)?);
                sample_rate = if rate.is_finite() && rate > 0.0 && rate < 1e7 { rate.round() as u32 } else { 0 };
                channels = r.u32().map_err(e)?.min(u16::MAX as u32) as u16;
                r.skip(4).map_err(e)?;
                bits = r.u32().map_err(e)?.min(u16::MAX as u32) as u16;
                lpcm_flags = r.u32().map_err(e)?;
                r.skip(8).map_err(e)?;
            }
            v => {
                return Err(CodecError::Unsupported { what: "audio sample entry", reason: format!("version {v}") });
            }
        }
        Ok(SoundDescription { channels, bits, sample_rate, lpcm_flags })
    }
}

/// An `mp4a` entry's codec, from its `esds` payload (after the full-box header);
/// `fallback` is the entry's own rate and channel count.
fn parse_mp4a_esds(payload: Bytes, fallback: AudioFormat) -> Result<CodecConfig, CodecError> {
    let oti = codecs::aac::esds_object_type_indication(&payload)?;
    match oti {
        // MPEG-1 audio and MPEG-2 (lower rates) audio: MP3 as muxers store it.
        0x69 | 0x6B => return Ok(audio_blob(AudioCodec::Mp3, Bytes::new(), fallback)),
        // DTS under an esds: the entry is copied for MP4, A_DTS needs nothing.
        0xA9 => return Ok(audio_blob(AudioCodec::Dts, Bytes::new(), fallback)),
        // Vorbis as FFmpeg writes it in MP4: the Xiph-laced headers as DSI.
        0xDD => {
            let range = codecs::aac::esds_any_decoder_specific_info(&payload)?
                .ok_or_else(|| missing("esds DecoderSpecificInfo"))?;
            let headers = payload.slice(range);
            let format = codecs::vorbis::parse_private(&headers)?.format;
            return Ok(CodecConfig::Audio { codec: AudioCodec::Vorbis, config: headers, format });
        }
        0x40 | 0x66 | 0x67 | 0x68 => {}
        _ => return Ok(CodecConfig::Unknown { fourcc: *b"mp4a", dims: None, audio: Some(fallback) }),
    }
    let range = codecs::aac::esds_decoder_specific_info(&payload)?;
    let asc = payload.slice(range);
    let parsed = codecs::aac::AudioSpecificConfig::parse(&asc)?;
    let format = AudioFormat {
        sample_rate: if parsed.sample_rate > 0 { parsed.sample_rate } else { fallback.sample_rate },
        channels: if parsed.channels > 0 { parsed.channels } else { fallback.channels },
    };
    if !parsed.is_aac() {
        // ALS, USAC, CELP...: MPEG-4 audio, but not AAC.
        let codec = AudioCodec::Mpeg4Audio { object_type: parsed.object_type };
        return Ok(CodecConfig::Audio { codec, config: asc, format });
    }
    Ok(CodecConfig::Aac { asc, format })
}

/// Any other entry: QuickTime PCM by its fourcc (with the byte order its `enda` box
/// gives, if any), else an unknown codec.
fn parse_qt_audio(fourcc: [u8; 4], fallback: AudioFormat, bits: u16, enda: Option<&[u8]>) -> CodecConfig {
    let AudioFormat { sample_rate, channels } = fallback;
    match codecs::pcm::PcmFormat::from_qt_fourcc(fourcc, channels, sample_rate, bits) {
        Some(mut pcm) => {
            // QuickTime's `enda` (in the `wave` extension): 1 means little-endian.
            if let Some(v) = enda {
                if matches!(&fourcc, b"in24" | b"in32" | b"fl32" | b"fl64") && v.len() >= 2 {
                    pcm.little_endian = v[1] == 1;
                }
            }
            CodecConfig::Pcm { pcm }
        }
        None => CodecConfig::Unknown { fourcc, dims: None, audio: Some(fallback) },
    }
}

/// The codec family a sample entry fourcc names, as FFmpeg prints it.
pub fn codec_family(fourcc: FourCc) -> &'static str {
    match &fourcc.0 {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"vp08" => "vp8",
        b"mp4a" => "aac",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b".mp3" => "mp3",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"alac" => "alac",
        b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "dts",
        b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"ipcm" | b"fpcm" | b"raw " => "pcm",
        _ => "unknown",
    }
}

impl Mp4Track {
    /// The codec family its sample entry names, as FFmpeg prints it (`mp4a` entries by
    /// the codec they were read as: aac, mp3, mpeg-4 als...).
    pub fn codec_family(&self) -> &'static str {
        match &self.codec {
            Ok(c @ (CodecConfig::Aac { .. } | CodecConfig::Audio { .. })) => c.name(),
            _ => codec_family(self.sample_entry_fourcc),
        }
    }

    /// "video h264 640x360, timescale 20000", for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.kind, self.codec_family());
        if let Some(d) = self.dims {
            s += &format!(" {}x{}", d.width, d.height);
        }
        if let Ok(c) = &self.codec {
            if let Some(a) = c.audio_format() {
                s += &format!(" {} Hz {} ch", a.sample_rate, a.channels);
            }
        }
        if let Some(scheme) = self.encryption {
            s += &format!(", encrypted ({scheme})");
        }
        s + &format!(", timescale {}", self.timescale)
    }

    /// Why this track cannot be remuxed, when it is encrypted.
    pub fn encryption_refusal(&self, track: usize) -> Option<String> {
        self.encryption.map(|scheme| {
            format!("track {track} is encrypted ({scheme}): livemux cannot carry its sample encryption data")
        })
    }

    /// The pipeline's view of this track, with the given codec parameters.
    pub fn to_track(
        &self,
        movie_timescale: u32,
        codec: CodecConfig,
        origin: crate::model::ParamOrigin,
    ) -> crate::model::Track {
        crate::model::Track {
            input_id: self.track_id as u64,
            kind: self.kind,
            timescale: self.timescale,
            codec,
            language: self.language,
            edits: self.edits.clone(),
            movie_timescale,
            origin,
            mp4_sample_entry: Some(self.sample_entry.clone()),
            meta: self.meta.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::pcm::PcmFormat;
    use crate::formats::mp4::init::fragmented_header_with;
    use crate::model::Track;

    fn audio_track(codec: CodecConfig) -> Track {
        Track::for_test(TrackKind::Audio, 48_000, codec)
    }

    /// What livemux writes in a sample entry, it reads back as the same codec parameters.
    #[test]
    fn audio_sample_entries_read_back() {
        let pcm = |bits, float, little_endian, sample_rate| CodecConfig::Pcm {
            pcm: PcmFormat { sample_rate, channels: 2, bits_per_sample: bits, float, little_endian },
        };
        let blob = |codec, config: Vec<u8>, sample_rate, channels| CodecConfig::Audio {
            codec,
            config: Bytes::from(config),
            format: AudioFormat { sample_rate, channels },
        };
        let mut als = vec![0xF8, 0x9E, 0x01, 0x77, 0x20, 0x00];
        als.extend_from_slice(b"ALS\0");
        als.extend_from_slice(&[0, 0, 0xBB, 0x80, 0, 0, 8, 0, 0, 0]);
        let configs = [
            pcm(16, false, true, 48_000),
            pcm(16, false, false, 48_000),
            pcm(24, false, true, 48_000),
            pcm(24, false, false, 48_000),
            pcm(32, false, true, 44_100),
            pcm(32, true, true, 44_100),
            pcm(64, true, true, 44_100),
            pcm(64, true, false, 44_100),
            pcm(24, false, true, 96_000),
            pcm(64, false, true, 48_000),
            blob(AudioCodec::Flac, codecs::flac::tests::streaminfo(), 44_100, 2),
            blob(AudioCodec::Vorbis, codecs::vorbis::tests::private(), 44_100, 2),
            blob(AudioCodec::Ac3, vec![0x10, 0x11, 0x40], 48_000, 2),
            blob(AudioCodec::Eac3, vec![0x06, 0x00, 0x20, 0x0F, 0x00], 48_000, 6),
            blob(
                AudioCodec::Alac,
                vec![0, 0, 16, 0, 0, 16, 40, 10, 14, 2, 0, 255, 0, 0, 0x18, 0x0C, 0, 0, 0, 0, 0, 0, 0xAC, 0x44],
                44_100,
                2,
            ),
            blob(AudioCodec::Mp3, vec![], 44_100, 2),
            blob(AudioCodec::Mpeg4Audio { object_type: 36 }, als, 48_000, 1),
        ];
        for config in configs {
            assert!(config.validate().is_ok(), "{config:?}");
            let header = fragmented_header_with(&[audio_track(config.clone())], &MovieMeta::default(), 0).unwrap().0;
            let moov_at = header.windows(4).position(|w| w == b"moov").unwrap() - 4;
            let movie = parse_movie(&header.slice(moov_at..), moov_at as u64, 8).unwrap();
            assert_eq!(movie.tracks[0].codec.as_ref(), Ok(&config));
            assert_eq!(movie.tracks[0].codec_family(), config.name());
        }
    }
}
