//! Metadata boxes: what a viewer sees of a track or a movie beyond its codec. Display
//! matrix (`tkhd`), language (`mdhd`, ISO packed or a QuickTime Macintosh code), pixel
//! aspect (`pasp`), colour (`colr`), HDR (`mdcv`/`clli`, QuickTime `SmDm`/`CoLL`), track
//! name (`udta/name`), creation time (`mvhd`) and iTunes tags (`udta/meta/ilst`, QuickTime
//! `udta/©xxx` strings).
//!
//! Reading is lenient: a damaged metadata box is left out, never an error, since the media
//! does not depend on it. Every length comes from the box and is checked against what is
//! left and against the limits below.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{Child, FourCc, Reader};
use super::write::{close, leaf, open, open_full, UNITY_MATRIX};
use crate::model::{Colour, ContentLightLevel, CoverArt, MasteringDisplay, MovieMeta, TrackMeta};

/// Seconds from 1904-01-01 (MP4 times) to 1970-01-01 (Unix time).
pub const MAC_EPOCH_OFFSET: i64 = 2_082_844_800;
const MAX_TEXT: usize = MovieMeta::MAX_TEXT;
const MAX_TAGS: usize = MovieMeta::MAX_TAGS;
const MAX_COVER: usize = MovieMeta::MAX_COVER;

/// The iTunes (`ilst`) item types and QuickTime `udta` strings, and the names FFmpeg gives
/// them (which Matroska tags use, upper-cased).
pub const ITUNES_TAGS: [(&[u8; 4], &str); 16] = [
    (b"\xa9nam", "title"),
    (b"\xa9ART", "artist"),
    (b"aART", "album_artist"),
    (b"\xa9alb", "album"),
    (b"\xa9cmt", "comment"),
    (b"\xa9day", "date"),
    (b"\xa9gen", "genre"),
    (b"\xa9wrt", "composer"),
    (b"cprt", "copyright"),
    (b"desc", "description"),
    (b"ldes", "synopsis"),
    (b"\xa9grp", "grouping"),
    (b"\xa9lyr", "lyrics"),
    (b"tvsh", "show"),
    (b"tven", "episode_id"),
    (b"tvnn", "network"),
];

/// QuickTime's Macintosh language codes (below 0x400), as FFmpeg maps them; "" where it
/// has no ISO 639 code (those read as "und").
const MAC_LANGUAGES: [&str; 139] = [
    "eng", "fra", "ger", "ita", "dut", "sve", "spa", "dan", "por", "nor", // 0
    "heb", "jpn", "ara", "fin", "gre", "ice", "mlt", "tur", "", "chi", // 10
    "urd", "hin", "tha", "kor", "lit", "pol", "hun", "est", "lav", "", // 20
    "", "", "rus", "chi", "", "iri", "alb", "ron", "ces", "slk", // 30
    "slv", "yid", "", "mac", "bul", "ukr", "bel", "uzb", "kaz", "aze", // 40
    "aze", "arm", "geo", "mol", "kir", "tgk", "tuk", "mon", "", "pus", // 50
    "kur", "kas", "snd", "tib", "nep", "san", "mar", "ben", "asm", "guj", // 60
    "", "ori", "mal", "kan", "tam", "tel", "", "bur", "khm", "lao", // 70
    "vie", "ind", "tgl", "may", "may", "amh", "tir", "orm", "som", "swa", // 80
    "", "run", "", "mlg", "epo", "", "", "", "", "", // 90
    "", "", "", "", "", "", "", "", "", "", // 100
    "", "", "", "", "", "", "", "", "", "", // 110
    "", "", "", "", "", "", "", "", "wel", "baq", // 120
    "cat", "lat", "que", "grn", "aym", "tat", "uig", "dzo", "jav", // 130
];

/// The language of an `mdhd` language field: three packed 5-bit letters, or (below
/// 0x400) a QuickTime Macintosh code, where 0 is English. "und" when unknown.
pub fn mdhd_language(code: u16) -> [u8; 3] {
    if code >= 0x400 && code != 0x7FFF {
        let l = [((code >> 10) & 31) as u8 + 0x60, ((code >> 5) & 31) as u8 + 0x60, (code & 31) as u8 + 0x60];
        return if l.iter().all(u8::is_ascii_lowercase) { l } else { *b"und" };
    }
    match MAC_LANGUAGES.get(code as usize) {
        Some(l) if l.len() == 3 => {
            let b = l.as_bytes();
            [b[0], b[1], b[2]]
        }
        _ => *b"und",
    }
}

/// Unix time of an MP4 time (seconds since 1904); `None` for 0 ("not set"). Times
/// before 1970 are taken as Unix times already, as FFmpeg does (some muxers write those).
pub fn mac_to_unix(t: u64) -> Option<i64> {
    if t == 0 {
        return None;
    }
    let t = i64::try_from(t).ok()?;
    Some(if t >= MAC_EPOCH_OFFSET { t - MAC_EPOCH_OFFSET } else { t })
}

/// MP4 time of a Unix time; 0 (not set) for times before 1904.
pub fn unix_to_mac(t: i64) -> u64 {
    t.checked_add(MAC_EPOCH_OFFSET).and_then(|m| u64::try_from(m).ok()).unwrap_or(0)
}

/// Creation time of an `mvhd` (or `tkhd`/`mdhd`) box body.
pub fn creation_time(body: &[u8]) -> Option<i64> {
    let mut r = Reader::new(body, 0, FourCc::new(b"mvhd"));
    let (version, _) = r.full_header().ok()?;
    let t = if version == 1 { r.u64().ok()? } else { r.u32().ok()? as u64 };
    mac_to_unix(t)
}

/// The display matrix of a `tkhd` box body, when it is not the identity.
pub fn tkhd_matrix(body: &[u8]) -> Option<[i32; 9]> {
    let mut r = Reader::new(body, 0, FourCc::new(b"tkhd"));
    let (version, _) = r.full_header().ok()?;
    // times, track_ID, reserved, duration, reserved[2], layer, group, volume, reserved
    r.skip(if version == 1 { 32 } else { 20 } + 16).ok()?;
    read_matrix(&mut r)
}

/// The matrix of an `mvhd` box body, when it is not the identity.
pub fn mvhd_matrix(body: &[u8]) -> Option<[i32; 9]> {
    let mut r = Reader::new(body, 0, FourCc::new(b"mvhd"));
    let (version, _) = r.full_header().ok()?;
    // times, timescale, duration, rate, volume, reserved
    r.skip(if version == 1 { 28 } else { 16 } + 16).ok()?;
    read_matrix(&mut r)
}

/// Nine 32-bit matrix values at the reader's position, when they are not the identity.
fn read_matrix(r: &mut Reader<'_>) -> Option<[i32; 9]> {
    let mut m = [0i32; 9];
    for v in m.iter_mut() {
        *v = r.i32().ok()?;
    }
    (m != UNITY_MATRIX.map(|v| v as i32)).then_some(m)
}

/// A track's matrix followed by the movie's (`track × movie`), as players and FFmpeg show
/// a track: columns 0 and 1 in 16.16 fixed point, column 2 in 2.30.
pub fn compose(track: &[i32; 9], movie: &[i32; 9]) -> [i32; 9] {
    let mut out = [0i32; 9];
    for i in 0..3 {
        for j in 0..3 {
            let sum: i64 = (0..3)
                .map(|e| (track[i * 3 + e] as i64 * movie[e * 3 + j] as i64) >> if e == 2 { 30 } else { 16 })
                .sum();
            out[i * 3 + j] = sum.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
    }
    out
}

/// Writes a matrix (the identity when `None`).
pub fn put_matrix(buf: &mut BytesMut, m: Option<[i32; 9]>) {
    for v in m.unwrap_or(UNITY_MATRIX.map(|v| v as i32)) {
        buf.put_i32(v);
    }
}

/// The width a `tkhd` shows a picture at: its width stretched by the pixel aspect.
pub fn display_width(width: u32, meta: &TrackMeta) -> u32 {
    match meta.pixel_aspect {
        Some((h, v)) if v > 0 => (width as u64 * h as u64 / v as u64).min(u16::MAX as u64) as u32,
        _ => width,
    }
}

fn body_reader<'a>(body: &'a [u8], what: &[u8; 4]) -> Reader<'a> {
    Reader::new(body, 0, FourCc::new(what))
}

/// `pasp` body: (horizontal spacing, vertical spacing), reduced; `None` when zero.
pub fn parse_pasp(body: &[u8]) -> Option<(u32, u32)> {
    let mut r = body_reader(body, b"pasp");
    let (h, v) = (r.u32().ok()?, r.u32().ok()?);
    let (h, v) = crate::model::reduced_ratio(u64::from(h), u64::from(v));
    (h > 0 && v > 0).then_some((h as u32, v as u32))
}

/// `colr` body of type `nclx` (ISO) or `nclc` (QuickTime, no range flag: limited).
pub fn parse_colr(body: &[u8]) -> Option<Colour> {
    let mut r = body_reader(body, b"colr");
    let kind = r.fourcc().ok()?;
    if kind.0 != *b"nclx" && kind.0 != *b"nclc" {
        return None;
    }
    let primaries = r.u16().ok()?.min(255) as u8;
    let transfer = r.u16().ok()?.min(255) as u8;
    let matrix = r.u16().ok()?.min(255) as u8;
    let full_range = kind.0 == *b"nclx" && r.u8().ok()? & 0x80 != 0;
    Some(Colour { primaries, transfer, matrix, full_range })
}

/// `mdcv` body (primaries green, blue, red in 0.00002, luminance in 0.0001 cd/m²).
pub fn parse_mdcv(body: &[u8]) -> Option<MasteringDisplay> {
    let mut r = body_reader(body, b"mdcv");
    let mut xy = || Some((r.u16().ok()?, r.u16().ok()?));
    let primaries = [xy()?, xy()?, xy()?];
    let white_point = xy()?;
    let max_luminance = r.u32().ok()?;
    let min_luminance = r.u32().ok()?;
    Some(MasteringDisplay { primaries, white_point, max_luminance, min_luminance })
}

/// QuickTime `SmDm` body (a full box: red, green, blue, white in 1/65536, luminance in
/// 24.8 and 18.14 fixed point), in `mdcv` units.
pub fn parse_smdm(body: &[u8]) -> Option<MasteringDisplay> {
    let mut r = body_reader(body, b"SmDm");
    r.full_header().ok()?;
    let to_mdcv = |v: u16| ((v as u64 * 50_000 + 32_768) / 65_536).min(u16::MAX as u64) as u16;
    let mut xy = || Some((to_mdcv(r.u16().ok()?), to_mdcv(r.u16().ok()?)));
    let (red, green, blue, white_point) = (xy()?, xy()?, xy()?, xy()?);
    let max = r.u32().ok()? as u64 * 10_000 / 256;
    let min = r.u32().ok()? as u64 * 10_000 / 16_384;
    Some(MasteringDisplay {
        primaries: [green, blue, red],
        white_point,
        max_luminance: max.min(u32::MAX as u64) as u32,
        min_luminance: min.min(u32::MAX as u64) as u32,
    })
}

/// `clli` body, or QuickTime `CoLL` (the same after a full-box header).
pub fn parse_clli(body: &[u8], full_box: bool) -> Option<ContentLightLevel> {
    let mut r = body_reader(body, b"clli");
    if full_box {
        r.full_header().ok()?;
    }
    Some(ContentLightLevel { max_cll: r.u16().ok()?, max_fall: r.u16().ok()? })
}

/// Reads `pasp`, `colr`, `mdcv`/`SmDm` and `clli`/`CoLL` among a visual sample entry's
/// boxes (`boxes` reads from the first box after the 78-byte entry header) into `meta`.
pub fn read_visual_boxes(boxes: &Reader<'_>, meta: &mut TrackMeta) {
    for c in boxes.children() {
        let Ok(c) = c else { break };
        let body = c.body();
        match &c.fourcc.0 {
            b"pasp" => meta.pixel_aspect = parse_pasp(body),
            b"colr" => meta.colour = meta.colour.or(parse_colr(body)),
            b"mdcv" => meta.mastering = parse_mdcv(body),
            b"SmDm" => meta.mastering = meta.mastering.or(parse_smdm(body)),
            b"clli" => meta.light_level = parse_clli(body, false),
            b"CoLL" => meta.light_level = meta.light_level.or(parse_clli(body, true)),
            _ => {}
        }
    }
}

/// Writes `colr`, `clli`, `mdcv` and `pasp` for `meta` (in FFmpeg's order) at the end of a
/// visual sample entry.
pub fn write_visual_boxes(buf: &mut BytesMut, meta: &TrackMeta) {
    if let Some(c) = meta.colour {
        let mut body = Vec::with_capacity(11);
        body.extend_from_slice(b"nclx");
        for v in [c.primaries, c.transfer, c.matrix] {
            body.extend_from_slice(&(v as u16).to_be_bytes());
        }
        body.push(if c.full_range { 0x80 } else { 0 });
        leaf(buf, b"colr", &body);
    }
    if let Some(l) = meta.light_level {
        let mut body = Vec::with_capacity(4);
        body.extend_from_slice(&l.max_cll.to_be_bytes());
        body.extend_from_slice(&l.max_fall.to_be_bytes());
        leaf(buf, b"clli", &body);
    }
    if let Some(m) = meta.mastering {
        let mut body = Vec::with_capacity(24);
        for (x, y) in m.primaries.iter().chain([&m.white_point]) {
            body.extend_from_slice(&x.to_be_bytes());
            body.extend_from_slice(&y.to_be_bytes());
        }
        body.extend_from_slice(&m.max_luminance.to_be_bytes());
        body.extend_from_slice(&m.min_luminance.to_be_bytes());
        leaf(buf, b"mdcv", &body);
    }
    // 1:1 too when the input said so: a stated aspect overrides the codec's, and without
    // one FFmpeg derives it from the `tkhd` size. Unsaid stays unsaid (the codec's counts).
    if let Some((h, v)) = meta.pixel_aspect {
        let mut body = Vec::with_capacity(8);
        body.extend_from_slice(&h.to_be_bytes());
        body.extend_from_slice(&v.to_be_bytes());
        leaf(buf, b"pasp", &body);
    }
}

fn text(b: &[u8]) -> Option<String> {
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    (b.len() <= MAX_TEXT && !b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned())
}

/// The name of an `hdlr` box, from the bytes after its handler type (12 reserved bytes,
/// then a C string, or in QuickTime a Pascal string). `None` when the box has no room for it.
pub fn handler_name(rest: &[u8]) -> Option<String> {
    let name = rest.get(12..)?;
    if name.len() > MAX_TEXT {
        return None;
    }
    // A Pascal string: its first byte counts the rest (as FFmpeg tells them apart).
    let name = match name.first() {
        Some(&n) if n > 0 && n as usize == name.len() - 1 => &name[1..],
        _ => name,
    };
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// The name in a track's `udta` body (`name` box, as FFmpeg writes it).
pub fn track_name(udta: &Reader<'_>) -> Option<String> {
    udta.children().map_while(Result::ok).find(|c| c.fourcc.0 == *b"name").and_then(|c| text(c.body()))
}

/// Writes a track's `udta` (its name), when it has one.
pub fn write_track_udta(buf: &mut BytesMut, meta: &TrackMeta) {
    let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty() && n.len() <= MAX_TEXT) else { return };
    let udta = open(buf, b"udta");
    leaf(buf, b"name", name.as_bytes());
    close(buf, udta);
}

fn tag_name(fourcc: &[u8; 4]) -> Option<&'static str> {
    ITUNES_TAGS.iter().find(|(f, _)| *f == fourcc).map(|(_, n)| *n)
}

/// Adds a tag (title to `title`), keeping the first of each name.
fn add_tag(movie: &mut MovieMeta, name: &str, value: String) {
    if name == "title" {
        movie.title.get_or_insert(value);
    } else if movie.tags.len() < MAX_TAGS && !movie.tags.iter().any(|(k, _)| k == name) {
        movie.tags.push((name.to_string(), value));
    }
}

/// The first `data` box of an `ilst` item: (type, value).
fn ilst_data<'a>(item: &Child<'a>) -> Option<(u32, &'a [u8])> {
    let data = item.reader().children().map_while(Result::ok).find(|c| c.fourcc.0 == *b"data")?;
    let mut r = data.reader();
    let kind = r.u32().ok()? & 0x00FF_FFFF;
    r.skip(4).ok()?;
    r.bytes(r.remaining()).ok().map(|v| (kind, v))
}

/// Reads a movie `udta` body: `meta/ilst` items and QuickTime `©xxx` strings.
pub fn read_movie_udta(udta: &Reader<'_>, movie: &mut MovieMeta, whole: &Bytes, whole_offset: u64) {
    for c in udta.children() {
        let Ok(c) = c else { break };
        if c.fourcc.0 == *b"meta" {
            let mut r = c.reader();
            // ISO 'meta' is a full box; QuickTime's is not (its first child follows at once).
            if r.remaining() >= 8 && &c.body()[4..8] != b"hdlr" {
                let _ = r.full_header();
            }
            let Some(ilst) = r.children().map_while(Result::ok).find(|c| c.fourcc.0 == *b"ilst") else { continue };
            for item in ilst.reader().children() {
                let Ok(item) = item else { break };
                if item.fourcc.0 == *b"covr" {
                    if movie.cover.is_none() {
                        movie.cover = cover(&item, whole, whole_offset);
                    }
                    continue;
                }
                let Some(name) = tag_name(&item.fourcc.0) else { continue };
                if let Some((1, v)) = ilst_data(&item) {
                    if let Some(v) = text(v) {
                        add_tag(movie, name, v);
                    }
                }
            }
        } else if let Some(name) = tag_name(&c.fourcc.0).filter(|_| c.fourcc.0[0] == 0xA9) {
            // QuickTime: a 16-bit length, a 16-bit language, the string.
            let mut r = c.reader();
            let Ok(len) = r.u16() else { continue };
            if r.skip(2).is_err() {
                continue;
            }
            if let Some(v) = r.bytes(len as usize).ok().and_then(text) {
                add_tag(movie, name, v);
            }
        }
    }
}

/// The picture of a `covr` item, sliced from the `moov` bytes.
fn cover(item: &Child<'_>, whole: &Bytes, whole_offset: u64) -> Option<CoverArt> {
    let data = item.reader().children().map_while(Result::ok).find(|c| c.fourcc.0 == *b"data")?;
    let kind = u32::from_be_bytes(data.body().get(..4)?.try_into().ok()?) & 0x00FF_FFFF;
    let mime = match kind {
        13 => "image/jpeg",
        14 => "image/png",
        _ => return None,
    };
    let at = usize::try_from(data.offset.checked_sub(whole_offset)?).ok()?;
    let end = at.checked_add(data.data.len())?;
    let start = at.checked_add(data.header_len + 8)?;
    (start <= end && end - start <= MAX_COVER && end <= whole.len())
        .then(|| CoverArt { mime, data: whole.slice(start..end) })
}

fn ilst_item(buf: &mut BytesMut, fourcc: &[u8; 4], kind: u32, value: &[u8]) {
    let item = open(buf, fourcc);
    let data = open(buf, b"data");
    buf.put_u32(kind);
    buf.put_u32(0);
    buf.put_slice(value);
    close(buf, data);
    close(buf, item);
}

/// Writes the movie's `udta/meta/ilst` (title, tags FFmpeg's MP4 muxer maps, cover), when
/// there is anything to write.
pub fn write_movie_udta(buf: &mut BytesMut, movie: &MovieMeta) {
    let mut items: Vec<(&[u8; 4], &str)> = Vec::new();
    if let Some(t) = movie.title.as_deref() {
        items.push((b"\xa9nam", t));
    }
    for (fourcc, name) in ITUNES_TAGS.iter().skip(1) {
        if let Some((_, v)) = movie.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            items.push((fourcc, v));
        }
    }
    items.retain(|(_, v)| !v.is_empty() && v.len() <= MAX_TEXT);
    let cover = movie.cover.as_ref().filter(|c| c.data.len() <= MAX_COVER);
    if items.is_empty() && cover.is_none() {
        return;
    }
    let udta = open(buf, b"udta");
    let meta = open_full(buf, b"meta", 0, 0);
    let hdlr = open_full(buf, b"hdlr", 0, 0);
    buf.put_u32(0);
    buf.put_slice(b"mdirappl");
    buf.put_bytes(0, 9);
    close(buf, hdlr);
    let ilst = open(buf, b"ilst");
    for (fourcc, v) in items {
        ilst_item(buf, fourcc, 1, v.as_bytes());
    }
    if let Some(c) = cover {
        ilst_item(buf, b"covr", if c.mime == "image/png" { 14 } else { 13 }, &c.data);
    }
    close(buf, ilst);
    close(buf, meta);
    close(buf, udta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_packed_and_macintosh() {
        assert_eq!(&mdhd_language(0x15C7), b"eng");
        assert_eq!(&mdhd_language(0x55C4), b"und");
        assert_eq!(&mdhd_language(0), b"eng", "QuickTime code 0 is English");
        assert_eq!(&mdhd_language(1), b"fra");
        assert_eq!(&mdhd_language(18), b"und", "no ISO code");
        assert_eq!(&mdhd_language(0x7FFF), b"und");
        assert_eq!(&mdhd_language(0x3FF), b"und");
        assert_eq!(&mdhd_language(0xFFFF), b"und", "letters out of range");
    }

    #[test]
    fn handler_names() {
        let mut b = vec![0u8; 12];
        b.extend_from_slice(b"Core Media Video\0");
        assert_eq!(handler_name(&b).as_deref(), Some("Core Media Video"));
        let mut p = vec![0u8; 12];
        p.push(5);
        p.extend_from_slice(b"Alias");
        assert_eq!(handler_name(&p).as_deref(), Some("Alias"), "QuickTime Pascal string");
        assert_eq!(handler_name(&b[..12]).as_deref(), Some(""));
        assert_eq!(handler_name(&b[..5]), None);
    }

    #[test]
    fn times() {
        assert_eq!(mac_to_unix(0), None);
        assert_eq!(mac_to_unix(MAC_EPOCH_OFFSET as u64 + 5), Some(5));
        assert_eq!(mac_to_unix(2_000_000_000), Some(2_000_000_000), "a Unix time, as FFmpeg reads it");
        assert_eq!(unix_to_mac(5), MAC_EPOCH_OFFSET as u64 + 5);
        assert_eq!(unix_to_mac(i64::MIN), 0);
        assert_eq!(mac_to_unix(u64::MAX), None);
        let mut body = vec![0u8; 4];
        body.extend_from_slice(&(MAC_EPOCH_OFFSET as u32 + 100).to_be_bytes());
        assert_eq!(creation_time(&body), Some(100));
        assert_eq!(creation_time(&body[..6]), None);
    }

    #[test]
    fn tkhd_matrix_rotated_or_identity() {
        let mut body = vec![0u8; 4 + 20 + 16];
        let rot: [i32; 9] = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        let mut m = BytesMut::new();
        put_matrix(&mut m, Some(rot));
        body.extend_from_slice(&m);
        body.extend_from_slice(&[0; 8]);
        assert_eq!(tkhd_matrix(&body), Some(rot));
        let mut unity = body[..40].to_vec();
        let mut m = BytesMut::new();
        put_matrix(&mut m, None);
        unity.extend_from_slice(&m);
        assert_eq!(tkhd_matrix(&unity), None);
        assert_eq!(tkhd_matrix(&body[..50]), None, "cut");
    }

    #[test]
    fn movie_matrix_composes_with_the_track_matrix() {
        let unity = UNITY_MATRIX.map(|v| v as i32);
        let rot90 = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(compose(&unity, &rot90), rot90);
        assert_eq!(compose(&rot90, &unity), rot90);
        assert_eq!(compose(&rot90, &rot90), [-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30], "twice 90 is 180");
        assert_eq!(compose(&unity, &[0; 9]), [0; 9]);
        let extreme = [i32::MIN; 9];
        compose(&extreme, &extreme);
        let mut mvhd = vec![0u8; 4 + 16 + 16];
        let mut m = BytesMut::new();
        put_matrix(&mut m, Some(rot90));
        mvhd.extend_from_slice(&m);
        assert_eq!(mvhd_matrix(&mvhd), Some(rot90));
        assert_eq!(mvhd_matrix(&mvhd[..40]), None);
    }

    #[test]
    fn visual_boxes_round_trip() {
        let meta = TrackMeta {
            pixel_aspect: Some((2, 1)),
            colour: Some(Colour { primaries: 9, transfer: 16, matrix: 9, full_range: false }),
            mastering: Some(MasteringDisplay {
                primaries: [(13250, 34500), (7500, 3000), (34000, 16000)],
                white_point: (15635, 16450),
                max_luminance: 10_000_000,
                min_luminance: 50,
            }),
            light_level: Some(ContentLightLevel { max_cll: 1000, max_fall: 400 }),
            ..TrackMeta::default()
        };
        let mut buf = BytesMut::new();
        write_visual_boxes(&mut buf, &meta);
        let mut back = TrackMeta::default();
        read_visual_boxes(&Reader::new(&buf, 0, FourCc::new(b"avc1")), &mut back);
        assert_eq!(back, meta);
        // Cut boxes are left out, not errors.
        let mut cut = TrackMeta::default();
        read_visual_boxes(&Reader::new(&buf[..buf.len() - 3], 0, FourCc::new(b"avc1")), &mut cut);
        assert_eq!(cut.pixel_aspect, None);
    }

    #[test]
    fn pasp_colr_edge_cases() {
        assert_eq!(parse_pasp(&[0, 1, 0, 0, 0, 1, 0, 0]), Some((1, 1)), "square, stated");
        assert_eq!(parse_pasp(&[0, 0, 0, 0, 0, 0, 0, 1]), None, "zero");
        assert_eq!(parse_pasp(&[0, 0, 0, 4, 0, 0, 0, 2]), Some((2, 1)));
        assert_eq!(
            parse_colr(b"nclc\0\x01\0\x01\0\x01"),
            Some(Colour { primaries: 1, transfer: 1, matrix: 1, full_range: false })
        );
        assert_eq!(parse_colr(b"prof\0\0"), None);
        assert_eq!(parse_colr(b"nclx\0\x01"), None);
    }

    #[test]
    fn smdm_and_coll() {
        let mut b = vec![0u8; 4];
        for v in [44564u16, 20971, 17367, 45219, 9830, 3932, 20491, 21561] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&(1000u32 << 8).to_be_bytes());
        b.extend_from_slice(&(82u32).to_be_bytes());
        let m = parse_smdm(&b).unwrap();
        assert_eq!(m.primaries[2], (34000, 16000), "red last");
        assert_eq!(m.max_luminance, 10_000_000);
        assert_eq!(
            parse_clli(&[0, 0, 0, 0, 3, 232, 1, 144], true),
            Some(ContentLightLevel { max_cll: 1000, max_fall: 400 })
        );
    }

    #[test]
    fn movie_udta_round_trip() {
        let movie = MovieMeta {
            title: Some("A title".into()),
            creation_time: None,
            tags: vec![("artist".into(), "Someone".into()), ("comment".into(), "Hi".into())],
            cover: Some(CoverArt { mime: "image/png", data: Bytes::from_static(b"\x89PNG....") }),
        };
        let mut buf = BytesMut::new();
        write_movie_udta(&mut buf, &movie);
        let whole = buf.freeze();
        let udta = Reader::new(&whole[8..], 8, FourCc::new(b"udta"));
        let mut back = MovieMeta::default();
        read_movie_udta(&udta, &mut back, &whole, 0);
        assert_eq!(back, movie);
        // Every cut of it reads without panicking.
        for n in 8..whole.len() {
            let mut m = MovieMeta::default();
            read_movie_udta(&Reader::new(&whole[8..n], 8, FourCc::new(b"udta")), &mut m, &whole, 0);
        }
    }

    #[test]
    fn quicktime_udta_strings_and_track_name() {
        let mut buf = BytesMut::new();
        let mut body = vec![0, 5, 0x55, 0xC4];
        body.extend_from_slice(b"Title");
        leaf(&mut buf, b"\xa9nam", &body);
        let mut m = MovieMeta::default();
        read_movie_udta(&Reader::new(&buf, 0, FourCc::new(b"udta")), &mut m, &Bytes::new(), 0);
        assert_eq!(m.title.as_deref(), Some("Title"));

        let mut t = BytesMut::new();
        write_track_udta(&mut t, &TrackMeta { name: Some("Cam".into()), ..TrackMeta::default() });
        assert_eq!(track_name(&Reader::new(&t[8..], 8, FourCc::new(b"udta"))).as_deref(), Some("Cam"));
    }
}
