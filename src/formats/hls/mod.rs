//! HLS packaging, sans IO: fragmented-MP4 [`Fragment`]s in, the files of an HLS directory
//! out ([`HlsWrite`]), for [`crate::io::hls`] to carry out in order.
//!
//! ```text
//!  DIR/index.m3u8    multivariant playlist: one variant, its CODECS, BANDWIDTH, RESOLUTION
//!  DIR/stream.m3u8   EXT-X-PLAYLIST-TYPE:EVENT media playlist, EXT-X-ENDLIST at a clean stop
//!  DIR/init-0.mp4    CMAF header (ftyp + moov) of the run; init-1.mp4 after a restart...
//!  DIR/seg-000000.m4s one moof + mdat (a livemux fragment: starts at a video keyframe
//!                    unless --max-fragment-ms cut it), numbered on across restarts
//! ```
//!
//! **One muxed stream, not one per track.** Audio and video share each segment (the
//! fragments livemux already cuts, interleaved by decode time): hls.js and Safari both play
//! muxed fMP4 from a single media playlist, a crash leaves audio and video cut at the same
//! point, and the segments are byte for byte the fragments of `--to fmp4`. Separate
//! renditions would need one playlist per track kept in step through every crash.
//!
//! **Crash-safe order.** Each segment (and the run's init segment) is a new file, written
//! whole and fsynced before the playlist that names it is replaced (temp file, fsync,
//! rename, directory fsync). A kill at any moment leaves `stream.m3u8` as it was or with
//! the new segment, never naming a file that is not complete. A restart on the same
//! directory continues the playlist after an `EXT-X-DISCONTINUITY` with its own init
//! segment, numbering its files after every name already there: nothing is overwritten.
//!
//! Codecs: those HLS players name (H.264, HEVC, AV1, VP9, AAC, Opus, FLAC, MP3, AC-3,
//! E-AC-3; see [`crate::codecs::rfc6381`]); the `hls` output format refuses the others
//! (VP8, Vorbis, PCM...).

pub mod playlist;

use bytes::Bytes;

use crate::codecs::rfc6381::codec_string;
use crate::formats::mp4::boxes::{Child, Children, FourCc, Reader};
use crate::formats::mp4::moov::parse_movie;
use crate::model::{Fragment, FragmentKind, TrackKind};
pub use playlist::{MediaPlaylist, Segment, Variant};

/// The media playlist's file name.
pub const MEDIA_PLAYLIST: &str = "stream.m3u8";

/// The multivariant playlist's default file name (the one a player opens).
pub const MULTIVARIANT: &str = "index.m3u8";

/// Segment length `livemux remux --to hls` and a pipeline's `format = "hls"` aim at, ms
/// (a segment ends at the first video keyframe after it, or at twice it).
pub const DEFAULT_SEGMENT_MS: u64 = 2000;

/// Most bytes of an init segment (`ftyp` + `moov`) read for its codec strings.
pub const MAX_INIT_BYTES: usize = 64 << 20;

/// A media file of an HLS directory, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFile {
    /// `init-N.mp4`: the init segment of run N.
    Init(u64),
    /// `seg-NNNNNN.m4s`: media segment N.
    Segment(u64),
}

/// Which media file `name` is, if it is one this packager writes (digits only between
/// prefix and suffix: no path, no sign).
pub fn media_file(name: &str) -> Option<MediaFile> {
    let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<u64>().ok()).flatten();
    if let Some(n) = name.strip_prefix("seg-").and_then(|s| s.strip_suffix(".m4s")) {
        return number(n).map(MediaFile::Segment);
    }
    let n = name.strip_prefix("init-").and_then(|s| s.strip_suffix(".mp4"))?;
    number(n).map(MediaFile::Init)
}

/// One step of writing an HLS directory, in order.
#[derive(Clone, Debug)]
pub enum HlsWrite {
    /// A new file, written whole (vectored) and made durable before the next step. Never
    /// replaces a file that exists.
    File {
        /// Its name in the directory.
        name: String,
        /// Its bytes.
        parts: Vec<Bytes>,
    },
    /// A playlist, replaced atomically (after the files it names are durable).
    Playlist {
        /// Its name in the directory.
        name: String,
        /// Its text.
        text: String,
    },
}

/// Turns a fragmented-MP4 fragment stream into HLS files and playlists.
#[derive(Debug)]
pub struct HlsPackager {
    playlist: MediaPlaylist,
    /// The multivariant playlist's name.
    multivariant: String,
    /// This run's init segment name, and whether it is written yet.
    init_name: String,
    init_written: bool,
    /// The next segment's number.
    next_segment: u64,
    /// The first segment of this run follows an earlier run's.
    restarted: bool,
    /// The variant as last written; `None` until the init segment is known.
    variant: Option<Variant>,
    /// Bit rate advertised in `index.m3u8`, bit/s.
    advertised: u64,
    /// This run's segments, media bytes and ms (for the average bit rate).
    run_segments: u64,
    bytes: u64,
    ms: u64,
}

impl HlsPackager {
    /// A packager for a directory holding the files `existing` (names) and, if an earlier run
    /// left one, its media playlist `previous` (text): the playlist is continued, the file
    /// numbers go on after every name present. `multivariant`: the multivariant playlist's name.
    pub fn new<'a>(
        multivariant: &str,
        previous: Option<&str>,
        existing: impl IntoIterator<Item = &'a str>,
    ) -> Result<HlsPackager, String> {
        let mut playlist = match previous {
            Some(text) => MediaPlaylist::parse(text).map_err(|e| format!("{MEDIA_PLAYLIST}: {e}"))?,
            None => MediaPlaylist::default(),
        };
        let restarted = !playlist.segments.is_empty();
        playlist.ended = false;
        let (mut next_segment, mut next_init) = (0u64, 0u64);
        let mut count = |name: &str| match media_file(name) {
            Some(MediaFile::Segment(n)) => next_segment = next_segment.max(n.saturating_add(1)),
            Some(MediaFile::Init(n)) => next_init = next_init.max(n.saturating_add(1)),
            None => {}
        };
        existing.into_iter().for_each(&mut count);
        for s in &playlist.segments {
            count(&s.uri);
            s.map.as_deref().map(&mut count);
        }
        Ok(HlsPackager {
            playlist,
            multivariant: multivariant.to_string(),
            init_name: format!("init-{next_init}.mp4"),
            init_written: false,
            next_segment,
            restarted,
            variant: None,
            advertised: 0,
            run_segments: 0,
            bytes: 0,
            ms: 0,
        })
    }

    /// Takes the next fragment of the fMP4 stream; returns what to write, in order.
    pub fn push(&mut self, fragment: &Fragment) -> Result<Vec<HlsWrite>, String> {
        match fragment.kind {
            // The fMP4 muxer's header goes out with the first media fragment; one with
            // bytes comes alone only when no media follows.
            FragmentKind::Header if fragment.parts.is_empty() => Ok(Vec::new()),
            FragmentKind::Header => {
                let mut out = Vec::new();
                self.init(&fragment.parts, &mut out)?;
                Ok(out)
            }
            FragmentKind::Media => self.media(fragment),
            FragmentKind::Trailer | FragmentKind::Finalize => Ok(Vec::new()),
        }
    }

    /// The end of the recording: `EXT-X-ENDLIST`, and the variant's measured bit rates.
    pub fn finish(&mut self) -> Vec<HlsWrite> {
        if self.playlist.segments.is_empty() {
            return Vec::new();
        }
        self.playlist.ended = true;
        let mut out = vec![HlsWrite::Playlist { name: MEDIA_PLAYLIST.into(), text: self.playlist.render() }];
        if let Some(v) = &mut self.variant {
            v.bandwidth = self.advertised;
            v.average_bandwidth = rate(self.bytes, self.ms);
            out.push(HlsWrite::Playlist { name: self.multivariant.clone(), text: v.render() });
        }
        out
    }

    fn media(&mut self, f: &Fragment) -> Result<Vec<HlsWrite>, String> {
        let mut out = Vec::new();
        let mut parts = &f.parts[..];
        if !self.init_written {
            // The first media fragment starts with the header (ftyp, moov) as one part.
            let (first, rest) = parts.split_first().ok_or("an empty first fragment")?;
            if !starts_init(first) {
                return Err("the first fragment does not start with ftyp + moov".into());
            }
            self.init(std::slice::from_ref(first), &mut out)?;
            parts = rest;
        }
        let name = format!("seg-{:06}.m4s", self.next_segment);
        self.next_segment += 1;
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        out.push(HlsWrite::File { name: name.clone(), parts: parts.to_vec() });
        let first_of_run = self.run_segments == 0;
        self.run_segments += 1;
        self.playlist.segments.push(Segment {
            uri: name,
            duration_ms: f.duration_ms,
            map: first_of_run.then(|| self.init_name.clone()),
            discontinuity: first_of_run && self.restarted,
        });
        self.bytes = self.bytes.saturating_add(len);
        self.ms = self.ms.saturating_add(f.duration_ms);
        out.push(HlsWrite::Playlist { name: MEDIA_PLAYLIST.into(), text: self.playlist.render() });
        // The variant: written with the first segment, again when a segment's rate passes
        // what it advertises (by a margin, so that it is rewritten seldom).
        let peak = rate(len, f.duration_ms).unwrap_or(0);
        if let Some(v) = &mut self.variant {
            if peak > self.advertised || v.bandwidth == 0 {
                self.advertised = self.advertised.max(peak.saturating_mul(5) / 4);
                v.bandwidth = self.advertised;
                out.push(HlsWrite::Playlist { name: self.multivariant.clone(), text: v.render() });
            }
        }
        Ok(out)
    }

    /// The run's init segment: written once; the variant's codec strings come from it.
    fn init(&mut self, parts: &[Bytes], out: &mut Vec<HlsWrite>) -> Result<(), String> {
        if self.init_written {
            return Err("a second init segment".into());
        }
        let data: Bytes = match parts {
            [one] => one.clone(),
            _ => Bytes::from(parts.concat()),
        };
        let data = ftyp_and_moov(&data);
        self.variant = Some(variant(&data)?);
        self.init_written = true;
        out.push(HlsWrite::File { name: self.init_name.clone(), parts: vec![data] });
        Ok(())
    }
}

/// Bit rate of `bytes` over `ms`, bit/s.
fn rate(bytes: u64, ms: u64) -> Option<u64> {
    (ms > 0).then(|| bytes.saturating_mul(8000) / ms)
}

/// Whether `data` is made of whole top-level boxes, the first `ftyp`, one of them `moov`,
/// none `moof`: the fMP4 muxer's header.
fn starts_init(data: &[u8]) -> bool {
    let Ok(boxes) = top_level(data).collect::<Result<Vec<_>, _>>() else { return false };
    let is = |b: &Child<'_>, t: &[u8; 4]| &b.fourcc.0 == t;
    boxes.first().is_some_and(|b| is(b, b"ftyp"))
        && boxes.iter().any(|b| is(b, b"moov"))
        && !boxes.iter().any(|b| is(b, b"moof"))
}

/// The `ftyp` and `moov` of a header: what an init segment holds. A `--to mp4` header
/// also has the reserve for its final index and its running index (`free`, `sidx`), which
/// mean nothing to a player of segments.
fn ftyp_and_moov(header: &Bytes) -> Bytes {
    let kept: Vec<Bytes> = top_level(header)
        .filter_map(|b| b.ok().filter(|b| matches!(&b.fourcc.0, b"ftyp" | b"moov")))
        .map(|b| header.slice(b.range_in(0)))
        .collect();
    match kept.iter().map(Bytes::len).sum::<usize>() {
        len if len == header.len() => header.clone(),
        _ => kept.concat().into(),
    }
}

/// The top-level boxes of `data`, which holds whole boxes.
fn top_level(data: &[u8]) -> Children<'_> {
    Reader::new(data, 0, FourCc::new(b"init")).children()
}

/// The variant an init segment describes: codec strings, picture size.
fn variant(init: &Bytes) -> Result<Variant, String> {
    if init.len() > MAX_INIT_BYTES {
        return Err(format!("an init segment of {} bytes (limit {MAX_INIT_BYTES})", init.len()));
    }
    let moov = top_level(init)
        .find_map(|b| b.ok().filter(|b| &b.fourcc.0 == b"moov"))
        .ok_or("the init segment has no moov")?;
    let header_len = u32::try_from(moov.header_len).map_err(|_| "a moov header past 4 GiB")?;
    let movie = parse_movie(&init.slice(moov.range_in(0)), moov.offset, header_len)
        .map_err(|e| format!("the init segment's moov: {e}"))?;
    let mut codecs = Vec::new();
    let mut resolution = None;
    for (i, t) in movie.tracks.iter().enumerate() {
        let codec = t.codec.as_ref().map_err(|e| format!("track {}: {e}", i + 1))?;
        let name = codec_string(t.sample_entry_fourcc.0, codec)
            .ok_or_else(|| format!("track {}: HLS players have no codec string for {}", i + 1, codec.name()))?;
        if !codecs.contains(&name) {
            codecs.push(name);
        }
        if t.kind == TrackKind::Video && resolution.is_none() {
            resolution = codec.dimensions().or(t.dims).map(|d| (d.width, d.height));
        }
    }
    Ok(Variant { uri: MEDIA_PLAYLIST.into(), bandwidth: 0, average_bandwidth: None, codecs, resolution })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_file_names() {
        assert_eq!(media_file("seg-000012.m4s"), Some(MediaFile::Segment(12)));
        assert_eq!(media_file("init-3.mp4"), Some(MediaFile::Init(3)));
        for name in ["seg-+1.m4s", "seg-.m4s", "seg-1.m4s.tmp", "../seg-1.m4s", "init-1.m4s", "stream.m3u8", "seg-99999999999999999999.m4s"]
        {
            assert_eq!(media_file(name), None, "{name}");
        }
    }

    #[test]
    fn an_init_segment_is_the_headers_ftyp_and_moov() {
        let boxed = |t: &[u8; 4], n: u32| [&(n + 8).to_be_bytes()[..], t, &vec![7; n as usize]].concat();
        let header: Bytes = [boxed(b"ftyp", 8), boxed(b"free", 100), boxed(b"moov", 20), boxed(b"sidx", 30)].concat().into();
        assert_eq!(&ftyp_and_moov(&header)[..], &[boxed(b"ftyp", 8), boxed(b"moov", 20)].concat()[..]);
        let plain: Bytes = [boxed(b"ftyp", 8), boxed(b"moov", 20)].concat().into();
        assert_eq!(ftyp_and_moov(&plain), plain);
    }

    #[test]
    fn numbering_goes_on_after_every_name_present() {
        let p = HlsPackager::new(MULTIVARIANT, None, ["seg-000004.m4s", "init-1.mp4", "notes.txt"]).unwrap();
        assert_eq!((p.next_segment, p.init_name.as_str()), (5, "init-2.mp4"));
    }
}
