//! Writing `ftyp` and `moov`: movie and track headers and sample entries built from typed
//! codec parameters.

use bytes::{BufMut, Bytes, BytesMut};

use super::meta;
use super::write::{close, leaf, open, open_full, pack_language, put_matrix, write_edts};
use crate::codecs::{self, AudioCodec, CodecConfig, Dimensions};
use crate::formats::MuxError;
use crate::model::{MovieMeta, Track, TrackKind};

/// Timescale of `mvhd` and of edit-list segment durations in files livemux writes, unless
/// every track agrees on another.
pub const DEFAULT_MOVIE_TIMESCALE: u32 = 1000;

/// The movie timescale to write: the input's when all tracks share one.
pub fn movie_timescale(tracks: &[Track]) -> u32 {
    match tracks.first() {
        Some(t) if t.movie_timescale > 0 && tracks.iter().all(|u| u.movie_timescale == t.movie_timescale) => {
            t.movie_timescale
        }
        _ => DEFAULT_MOVIE_TIMESCALE,
    }
}

pub fn write_ftyp(buf: &mut BytesMut, major: &[u8; 4], compatible: &[&[u8; 4]]) {
    let start = open(buf, b"ftyp");
    buf.put_slice(major);
    buf.put_u32(0x200);
    for brand in compatible {
        buf.put_slice(*brand);
    }
    close(buf, start);
}

/// The header of mvhd, tkhd and mdhd: version 1 (64-bit times) only when a time needs
/// it, `time` as creation and modification time (seconds since 1904, 0: not set), a
/// 32-bit field (timescale, or tkhd's track_ID followed by a reserved word), then the
/// duration. Returns the box start.
fn open_timed_at(buf: &mut BytesMut, fourcc: &[u8; 4], flags: u32, field: &[u32], duration: u64, time: u64) -> usize {
    let v1 = duration > u32::MAX as u64 || time > u32::MAX as u64;
    let start = open_full(buf, fourcc, v1 as u8, flags);
    let put_time = |buf: &mut BytesMut, t: u64| if v1 { buf.put_u64(t) } else { buf.put_u32(t as u32) };
    put_time(buf, time);
    put_time(buf, time);
    field.iter().for_each(|&v| buf.put_u32(v));
    put_time(buf, duration);
    start
}

pub fn write_mvhd(buf: &mut BytesMut, timescale: u32, duration: u64, next_track_id: u32) {
    write_mvhd_at(buf, timescale, duration, next_track_id, 0);
}

/// [`write_mvhd`] with a creation time (seconds since 1904, 0 for none).
pub fn write_mvhd_at(buf: &mut BytesMut, timescale: u32, duration: u64, next_track_id: u32, created: u64) {
    let start = open_timed_at(buf, b"mvhd", 0, &[timescale], duration, created);
    buf.put_u32(0x0001_0000);
    buf.put_u16(0x0100);
    buf.put_bytes(0, 10);
    put_matrix(buf);
    buf.put_bytes(0, 24);
    buf.put_u32(next_track_id);
    close(buf, start);
}

/// What a `trak` needs beyond the [`Track`].
pub struct TrakTiming {
    /// Track duration in the movie timescale.
    pub duration_movie: u64,
    /// Media duration in the track timescale.
    pub duration_media: u64,
    pub movie_timescale: u32,
    /// Creation time of `tkhd` and `mdhd`, seconds since 1904 (0: not set).
    pub created: u64,
}

/// Writes a `trak` whose `stbl` body is produced by `stbl_tables` (empty tables for a
/// fragmented file, full ones for a regular file).
pub fn write_trak(
    buf: &mut BytesMut,
    index: usize,
    track: &Track,
    timing: &TrakTiming,
    stbl_tables: impl FnOnce(&mut BytesMut),
) -> Result<(), MuxError> {
    let track_id = index as u32 + 1;
    let trak = open(buf, b"trak");

    let tkhd = open_timed_at(buf, b"tkhd", 3, &[track_id, 0], timing.duration_movie, timing.created);
    buf.put_bytes(0, 8);
    buf.put_u16(0);
    buf.put_u16(if track.kind == TrackKind::Audio { 1 } else { 0 });
    buf.put_u16(if track.kind == TrackKind::Audio { 0x0100 } else { 0 });
    buf.put_u16(0);
    meta::put_matrix(buf, track.meta.matrix);
    let dims = track.codec.dimensions().unwrap_or_default();
    buf.put_u32(meta::display_width(dims.width, &track.meta) << 16);
    buf.put_u32(dims.height << 16);
    close(buf, tkhd);

    if !track.edits.is_empty() {
        write_edits(buf, track, timing.movie_timescale);
    }

    let mdia = open(buf, b"mdia");
    let mdhd = open_timed_at(buf, b"mdhd", 0, &[track.timescale], timing.duration_media, timing.created);
    buf.put_u16(pack_language(track.language));
    buf.put_u16(0);
    close(buf, mdhd);

    let (handler, name): (&[u8; 4], &[u8]) = match track.kind {
        TrackKind::Video => (b"vide", b"VideoHandler\0"),
        TrackKind::Audio => (b"soun", b"SoundHandler\0"),
        TrackKind::Other => (b"meta", b"MetaHandler\0"),
    };
    let hdlr = open_full(buf, b"hdlr", 0, 0);
    buf.put_u32(0);
    buf.put_slice(handler);
    buf.put_bytes(0, 12);
    match track.meta.handler_name.as_deref().filter(|n| n.len() <= crate::model::MovieMeta::MAX_TEXT) {
        Some(n) => {
            buf.put_slice(n.as_bytes());
            buf.put_u8(0);
        }
        None => buf.put_slice(name),
    }
    close(buf, hdlr);

    let minf = open(buf, b"minf");
    match track.kind {
        TrackKind::Video => {
            let vmhd = open_full(buf, b"vmhd", 0, 1);
            buf.put_bytes(0, 8);
            close(buf, vmhd);
        }
        TrackKind::Audio => {
            let smhd = open_full(buf, b"smhd", 0, 0);
            buf.put_u32(0);
            close(buf, smhd);
        }
        TrackKind::Other => {
            let nmhd = open_full(buf, b"nmhd", 0, 0);
            close(buf, nmhd);
        }
    }
    let dinf = open(buf, b"dinf");
    let dref = open_full(buf, b"dref", 0, 0);
    buf.put_u32(1);
    let url = open_full(buf, b"url ", 0, 1);
    close(buf, url);
    close(buf, dref);
    close(buf, dinf);

    let stbl = open(buf, b"stbl");
    let stsd = open_full(buf, b"stsd", 0, 0);
    buf.put_u32(1);
    write_sample_entry(buf, index, track)?;
    close(buf, stsd);
    stbl_tables(buf);
    close(buf, stbl);
    close(buf, minf);
    close(buf, mdia);
    meta::write_track_udta(buf, &track.meta);
    close(buf, trak);
    Ok(())
}

fn write_edits(buf: &mut BytesMut, track: &Track, movie_timescale: u32) {
    let from = track.movie_timescale.max(1) as u128;
    let edits: Vec<(u64, i64, i16)> = track
        .edits
        .iter()
        .map(|e| {
            let d =
                (e.segment_duration_movie_ticks as u128 * movie_timescale as u128 / from).min(u64::MAX as u128) as u64;
            (d, e.media_time_ticks, e.media_rate_integer)
        })
        .collect();
    write_edts(buf, &edits);
}

fn visual_entry(buf: &mut BytesMut, fourcc: &[u8; 4], dims: Dimensions, config: &[(&[u8; 4], &[u8])]) {
    let start = open(buf, fourcc);
    buf.put_bytes(0, 6);
    buf.put_u16(1);
    buf.put_bytes(0, 16);
    buf.put_u16(dims.width.min(u16::MAX as u32) as u16);
    buf.put_u16(dims.height.min(u16::MAX as u32) as u16);
    buf.put_u32(0x0048_0000);
    buf.put_u32(0x0048_0000);
    buf.put_u32(0);
    buf.put_u16(1);
    buf.put_bytes(0, 32);
    buf.put_u16(0x0018);
    buf.put_i16(-1);
    for (name, body) in config {
        leaf(buf, name, body);
    }
    close(buf, start);
}

fn audio_entry(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    channels: u16,
    bits: u16,
    rate: u32,
    config: impl FnOnce(&mut BytesMut),
) {
    let start = open(buf, fourcc);
    buf.put_bytes(0, 6);
    buf.put_u16(1);
    buf.put_bytes(0, 8);
    buf.put_u16(channels);
    buf.put_u16(bits);
    buf.put_u32(0);
    buf.put_u32(if rate <= u16::MAX as u32 { rate << 16 } else { 0 });
    config(buf);
    close(buf, start);
}

/// A QuickTime sound sample description version 1 for little-endian `in24`/`in32`/
/// `fl32`/`fl64` samples, with the `wave` extension holding `frma` and `enda` (1:
/// little-endian), laid out as FFmpeg writes it and reads it back in MP4 and MOV.
fn pcm_entry_with_enda(buf: &mut BytesMut, pcm: &codecs::pcm::PcmFormat) {
    let fourcc = pcm.qt_fourcc();
    let start = open(buf, &fourcc);
    buf.put_bytes(0, 6);
    buf.put_u16(1);
    buf.put_u16(1); // version 1
    buf.put_bytes(0, 6);
    buf.put_u16(pcm.channels);
    buf.put_u16(16);
    buf.put_u32(0);
    let rate = pcm.sample_rate;
    buf.put_u32(if rate <= u16::MAX as u32 { rate << 16 } else { 0 });
    let bytes = u32::from(pcm.bits_per_sample / 8);
    buf.put_u32(1); // samples per packet
    buf.put_u32(bytes); // bytes per packet (one channel)
    buf.put_u32(bytes * u32::from(pcm.channels)); // bytes per frame
    buf.put_u32(2); // bytes per sample (QuickTime's historic value)
    let wave = open(buf, b"wave");
    leaf(buf, b"frma", &fourcc);
    leaf(buf, b"enda", &[0, 1]);
    buf.put_u32(8); // terminator atom: an empty box of type 0
    buf.put_u32(0);
    close(buf, wave);
    close(buf, start);
}

/// A QuickTime `lpcm` sound sample description version 2: the rate as a 64-bit float
/// (rates above 65535 Hz do not fit the 16.16 field) and the LinearPCM format flags
/// (float, byte order), as FFmpeg writes and reads it.
fn lpcm_entry_v2(buf: &mut BytesMut, pcm: &codecs::pcm::PcmFormat) {
    let start = open(buf, b"lpcm");
    buf.put_bytes(0, 6);
    buf.put_u16(1);
    buf.put_u16(2); // version 2
    buf.put_bytes(0, 6);
    buf.put_u16(3);
    buf.put_u16(16);
    buf.put_u16(0xFFFE);
    buf.put_u16(0);
    buf.put_u32(0x0001_0000);
    buf.put_u32(72); // sizeOfStructOnly
    buf.put_u64(f64::from(pcm.sample_rate).to_bits());
    buf.put_u32(u32::from(pcm.channels));
    buf.put_u32(0x7F00_0000);
    buf.put_u32(u32::from(pcm.bits_per_sample));
    buf.put_u32(pcm.lpcm_flags());
    buf.put_u32(pcm.bytes_per_frame()); // bytes per audio packet
    buf.put_u32(1); // LPCM frames per audio packet
    close(buf, start);
}

fn has_parameter_sets_hevc(hvcc: &[u8]) -> bool {
    codecs::hevc::HvcConfig::parse(hvcc)
        .map(|c| [32u8, 33, 34].iter().all(|t| c.arrays.iter().any(|(nt, nals)| nt == t && !nals.is_empty())))
        .unwrap_or(true)
}

/// Writes the sample entry for `track`, built from its typed codec parameters.
pub fn write_sample_entry(buf: &mut BytesMut, index: usize, track: &Track) -> Result<(), MuxError> {
    let entry = buf.len();
    match &track.codec {
        CodecConfig::H264 { .. }
        | CodecConfig::Hevc { .. }
        | CodecConfig::Av1 { .. }
        | CodecConfig::Vp9 { .. }
        | CodecConfig::Vp8 { .. } => write_visual_entry(buf, &track.codec),
        CodecConfig::Aac { asc, format } => {
            let esds = codecs::aac::build_esds_payload(asc, index as u16 + 1, 0, 0, 0);
            esds_entry(buf, format.channels.max(1), format.sample_rate, &esds);
        }
        CodecConfig::Opus { head } => {
            let dops = head.to_dops();
            audio_entry(buf, b"Opus", head.channels as u16, 16, 48_000, |b| leaf(b, b"dOps", &dops));
        }
        CodecConfig::Pcm { pcm } if pcm.sample_rate > u32::from(u16::MAX) || pcm.qt_fourcc() == *b"lpcm" => {
            lpcm_entry_v2(buf, pcm)
        }
        CodecConfig::Pcm { pcm } if pcm.needs_enda() => pcm_entry_with_enda(buf, pcm),
        CodecConfig::Pcm { pcm } => {
            audio_entry(buf, &pcm.qt_fourcc(), pcm.channels, pcm.bits_per_sample, pcm.sample_rate, |_| {});
        }
        CodecConfig::Audio { codec, config, format } => {
            write_audio_blob_entry(buf, index, track, *codec, config, *format)?
        }
        CodecConfig::Unknown { .. } => match &track.mp4_sample_entry {
            Some(entry) => buf.put_slice(entry),
            None => return Err(unsupported_entry(index, track, "no MP4 sample entry to carry it in")),
        },
    }
    // Built entries get the pixel aspect, colour and HDR boxes (a copied one has its own).
    if track.kind == TrackKind::Video && !matches!(track.codec, CodecConfig::Unknown { .. }) {
        meta::write_visual_boxes(buf, &track.meta);
        close(buf, entry);
    }
    Ok(())
}

/// The error for a track whose MP4 sample entry cannot be written.
fn unsupported_entry(index: usize, track: &Track, reason: &str) -> MuxError {
    MuxError::Unsupported { track: index, codec: track.codec.name(), format: "mp4", reason: reason.to_string() }
}

/// The sample entry of a video codec (H.264, HEVC, AV1, VP9, VP8), left open for the
/// visual boxes.
fn write_visual_entry(buf: &mut BytesMut, codec: &CodecConfig) {
    match codec {
        CodecConfig::H264 { avcc, dims } => {
            let fourcc = match codecs::h264::AvcConfig::parse(avcc) {
                Ok(c) if c.sps.is_empty() => b"avc3",
                _ => b"avc1",
            };
            visual_entry(buf, fourcc, *dims, &[(b"avcC", avcc)]);
        }
        CodecConfig::Hevc { hvcc, dims } => {
            let fourcc = if has_parameter_sets_hevc(hvcc) { b"hvc1" } else { b"hev1" };
            visual_entry(buf, fourcc, *dims, &[(b"hvcC", hvcc)]);
        }
        CodecConfig::Av1 { av1c, dims } => visual_entry(buf, b"av01", *dims, &[(b"av1C", av1c)]),
        CodecConfig::Vp9 { vpcc, dims } => {
            let mut body = vec![1, 0, 0, 0];
            body.extend_from_slice(vpcc);
            visual_entry(buf, b"vp09", *dims, &[(b"vpcC", &body)]);
        }
        CodecConfig::Vp8 { dims } => {
            // VP8: profile 0, level 10, 8-bit 4:2:0 (0x82), colour primaries, transfer and matrix
            // "unspecified" (2), no codec initialization data.
            let body = [1, 0, 0, 0, 0, 10, 0x82, 2, 2, 2, 0, 0];
            visual_entry(buf, b"vp08", *dims, &[(b"vpcC", &body)]);
        }
        _ => unreachable!("write_sample_entry passes video codecs only"),
    }
}

/// An `mp4a` entry carrying the `esds` payload `esds`.
fn esds_entry(buf: &mut BytesMut, channels: u16, rate: u32, esds: &[u8]) {
    audio_entry(buf, b"mp4a", channels, 16, rate, |b| {
        let e = open_full(b, b"esds", 0, 0);
        b.put_slice(esds);
        close(b, e);
    });
}

/// The sample entry of an audio codec whose configuration is one blob
/// ([`CodecConfig::Audio`]).
fn write_audio_blob_entry(
    buf: &mut BytesMut,
    index: usize,
    track: &Track,
    codec: AudioCodec,
    config: &[u8],
    format: codecs::AudioFormat,
) -> Result<(), MuxError> {
    let (channels, rate) = (format.channels.max(1), format.sample_rate);
    match codec {
        AudioCodec::Flac => {
            let bits = codecs::flac::parse_blocks(config).map(|i| i.bits_per_sample).unwrap_or(16);
            audio_entry(buf, b"fLaC", channels, bits, rate, |b| {
                let e = open_full(b, b"dfLa", 0, 0);
                b.put_slice(config);
                close(b, e);
            });
        }
        AudioCodec::Mp3 => {
            let esds = codecs::aac::build_esds_payload_for(0x6B, None, index as u16 + 1, 0, 0, 0);
            esds_entry(buf, channels, rate, &esds);
        }
        AudioCodec::Mpeg4Audio { .. } | AudioCodec::Vorbis => {
            // Vorbis as FFmpeg writes (and FFmpeg and GStreamer read) it: the
            // Xiph-laced headers as DecoderSpecificInfo, objectTypeIndication 0xDD.
            let oti = if codec == AudioCodec::Vorbis { 0xDD } else { 0x40 };
            let esds = codecs::aac::build_esds_payload_for(oti, Some(config), index as u16 + 1, 0, 0, 0);
            esds_entry(buf, channels, rate, &esds);
        }
        AudioCodec::Ac3 => audio_entry(buf, b"ac-3", channels, 16, rate, |b| leaf(b, b"dac3", config)),
        AudioCodec::Eac3 => audio_entry(buf, b"ec-3", channels, 16, rate, |b| leaf(b, b"dec3", config)),
        AudioCodec::Alac => {
            let bits = codecs::alac::AlacConfig::parse(config).map(|c| u16::from(c.bit_depth)).unwrap_or(16);
            audio_entry(buf, b"alac", channels, bits, rate, |b| {
                let e = open_full(b, b"alac", 0, 0);
                b.put_slice(config);
                close(b, e);
            });
        }
        AudioCodec::Dts => match &track.mp4_sample_entry {
            // An MP4 input's own entry (DTS's `ddts` is not rebuilt).
            Some(entry) => buf.put_slice(entry),
            None => {
                return Err(unsupported_entry(index, track, "livemux does not build its MP4 sample entry (use mkv)"))
            }
        },
    }
    Ok(())
}

/// The empty sample tables of a fragmented file's `stbl`.
pub fn write_empty_tables(buf: &mut BytesMut) {
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = open_full(buf, fourcc, 0, 0);
        buf.put_u32(0);
        close(buf, b);
    }
    let stsz = open_full(buf, b"stsz", 0, 0);
    buf.put_u64(0);
    close(buf, stsz);
}

/// Where the boxes of a fragmented header lie, as offsets in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLayout {
    /// The reserved `free` box: (offset, total size), when one was asked for.
    pub reserve: Option<(u64, u64)>,
    /// Offset of the `moov`.
    pub moov_offset: u64,
}

/// Bytes of one disk sector: a write of up to 16 bytes that stays inside one is taken to
/// reach the disk whole (see [`crate::formats::mp4::finalize`]).
pub const SECTOR: u64 = 512;

/// Smallest reserved `free` box: room for the 16-byte `mdat` header that finalizing
/// writes over it.
pub const MIN_RESERVE: u64 = 16;

/// `ftyp`, then a `free` box of `reserve` bytes (none for 0, at least [`MIN_RESERVE`]
/// otherwise) whose first 16 bytes sit inside one [`SECTOR`], then `moov` with `mvex`
/// and the movie's creation time, title and tags. The free box is where a regular `moov`
/// can later go without moving media.
pub fn fragmented_header_with(
    tracks: &[Track],
    movie: &MovieMeta,
    reserve: u64,
) -> Result<(Bytes, HeaderLayout), MuxError> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut brands: Vec<&[u8; 4]> = vec![b"iso5", b"iso6", b"mp41"];
    if tracks.iter().any(|t| matches!(t.codec, CodecConfig::H264 { .. })) {
        brands.push(b"avc1");
    }
    write_ftyp(&mut buf, b"iso5", &brands);
    let mut layout = HeaderLayout { reserve: None, moov_offset: 0 };
    if reserve > 0 {
        let reserve = reserve.clamp(MIN_RESERVE, u32::MAX as u64 / 2);
        let in_sector = buf.len() as u64 % SECTOR;
        if in_sector + 16 > SECTOR {
            // Pad with a small free box so that the reserved box starts a sector.
            let mut pad = SECTOR - in_sector;
            if pad < 8 {
                pad += SECTOR;
            }
            buf.put_u32(pad as u32);
            buf.put_slice(b"free");
            buf.put_bytes(0, pad as usize - 8);
        }
        layout.reserve = Some((buf.len() as u64, reserve));
        buf.put_u32(reserve as u32);
        buf.put_slice(b"free");
        buf.put_bytes(0, reserve as usize - 8);
    }
    layout.moov_offset = buf.len() as u64;
    let movie_ts = movie_timescale(tracks);
    let moov = open(&mut buf, b"moov");
    let created = movie.creation_time.map_or(0, meta::unix_to_mac);
    write_mvhd_at(&mut buf, movie_ts, 0, tracks.len() as u32 + 1, created);
    let timing = TrakTiming { duration_movie: 0, duration_media: 0, movie_timescale: movie_ts, created };
    for (i, t) in tracks.iter().enumerate() {
        write_trak(&mut buf, i, t, &timing, write_empty_tables)?;
    }
    let mvex = open(&mut buf, b"mvex");
    for i in 0..tracks.len() {
        let trex = open_full(&mut buf, b"trex", 0, 0);
        buf.put_u32(i as u32 + 1);
        buf.put_u32(1);
        buf.put_u32(0);
        buf.put_u32(0);
        buf.put_u32(0);
        close(&mut buf, trex);
    }
    close(&mut buf, mvex);
    meta::write_movie_udta(&mut buf, movie);
    close(&mut buf, moov);
    Ok((buf.freeze(), layout))
}
