//! Metadata elements: what a viewer sees of a track or a segment beyond its codec.
//! TrackEntry `Name`, `Language`/`LanguageBCP47`; Video `DisplayWidth`/`DisplayHeight`
//! (pixel aspect), `Colour` (H.273 code points, MaxCLL/MaxFALL, MasteringMetadata) and
//! `Projection` (a rotation or flip, read and written the way FFmpeg maps a display
//! matrix); Info `Title` and `DateUTC`; global `Tags`.
//!
//! Reading is lenient: a damaged metadata element is left out, never an error.

use bytes::{Bytes, BytesMut};

use super::ebml::{
    children, put_element, put_float, put_master, put_string, put_uint, read_float, read_int, read_string, read_uint,
};
use super::tracks::{SegmentInfo, TrackEntry};
use crate::codecs::Dimensions;
use crate::model::{Colour, ContentLightLevel, CoverArt, MasteringDisplay, MovieMeta, TrackMeta};

pub const NAME: u32 = 0x536E;
pub const LANGUAGE_BCP47: u32 = 0x22B59D;
pub const TITLE: u32 = 0x7BA9;
pub const DATE_UTC: u32 = 0x4461;

const DISPLAY_WIDTH: u32 = 0x54B0;
const DISPLAY_HEIGHT: u32 = 0x54BA;
const DISPLAY_UNIT: u32 = 0x54B2;
const STEREO_MODE: u32 = 0x53B8;
const COLOUR: u32 = 0x55B0;
const MATRIX_COEFFICIENTS: u32 = 0x55B1;
const RANGE: u32 = 0x55B9;
const TRANSFER_CHARACTERISTICS: u32 = 0x55BA;
const PRIMARIES: u32 = 0x55BB;
const MAX_CLL: u32 = 0x55BC;
const MAX_FALL: u32 = 0x55BD;
const MASTERING_METADATA: u32 = 0x55D0;
/// R x, R y, G x, G y, B x, B y, white x, white y, luminance max, luminance min.
const MASTERING_FIELDS: [u32; 10] = [0x55D1, 0x55D2, 0x55D3, 0x55D4, 0x55D5, 0x55D6, 0x55D7, 0x55D8, 0x55D9, 0x55DA];
const PROJECTION: u32 = 0x7670;
const PROJECTION_TYPE: u32 = 0x7671;
const PROJECTION_POSE_YAW: u32 = 0x7673;
const PROJECTION_POSE_PITCH: u32 = 0x7674;
const PROJECTION_POSE_ROLL: u32 = 0x7675;

const TAG: u32 = 0x7373;
const TARGETS: u32 = 0x63C0;
const TARGET_TYPE_VALUE: u32 = 0x68CA;
/// TagTrackUID, TagEditionUID, TagChapterUID, TagAttachmentUID: a tag with one is not global.
const TARGET_UIDS: [u32; 4] = [0x63C5, 0x63C9, 0x63C4, 0x63C6];
const SIMPLE_TAG: u32 = 0x67C8;
const TAG_NAME: u32 = 0x45A3;
const TAG_STRING: u32 = 0x4487;

const ATTACHED_FILE: u32 = 0x61A7;
const FILE_NAME: u32 = 0x466E;
const FILE_MEDIA_TYPE: u32 = 0x4660;
const FILE_DATA: u32 = 0x465C;
const FILE_UID: u32 = 0x46AE;

const MAX_COVER: usize = MovieMeta::MAX_COVER;
const MAX_TEXT: usize = MovieMeta::MAX_TEXT;
const MAX_TAGS: usize = MovieMeta::MAX_TAGS;
/// Seconds from 1970-01-01 (Unix time) to 2001-01-01 (Matroska's DateUTC origin).
pub const DATE_UTC_EPOCH: i64 = 978_307_200;
/// Tags another field carries, or that describe the file rather than the recording.
const SKIPPED_TAGS: [&str; 7] =
    ["duration", "encoder", "major_brand", "minor_version", "compatible_brands", "creation_time", "handler_name"];

/// Reads TrackEntry children that carry metadata (Name, LanguageBCP47).
pub fn read_entry_child(t: &mut TrackEntry, id: u32, body: &[u8]) {
    match id {
        NAME if body.len() <= MAX_TEXT => t.meta.name = Some(read_string(body)).filter(|n| !n.is_empty()),
        LANGUAGE_BCP47 if body.len() <= 64 => t.language_bcp47 = Some(read_string(body)),
        _ => {}
    }
}

/// ISO 639-1 codes of common languages and the ISO 639-2 (bibliographic) codes Matroska's
/// `Language` uses for them.
const TWO_LETTER: [(&str, &str); 30] = [
    ("en", "eng"),
    ("fr", "fre"),
    ("de", "ger"),
    ("es", "spa"),
    ("it", "ita"),
    ("pt", "por"),
    ("nl", "dut"),
    ("ru", "rus"),
    ("ja", "jpn"),
    ("zh", "chi"),
    ("ko", "kor"),
    ("ar", "ara"),
    ("hi", "hin"),
    ("sv", "swe"),
    ("no", "nor"),
    ("da", "dan"),
    ("fi", "fin"),
    ("pl", "pol"),
    ("cs", "cze"),
    ("el", "gre"),
    ("he", "heb"),
    ("hu", "hun"),
    ("tr", "tur"),
    ("uk", "ukr"),
    ("ro", "rum"),
    ("th", "tha"),
    ("vi", "vie"),
    ("id", "ind"),
    ("fa", "per"),
    ("ca", "cat"),
];

fn three_letters(s: &str) -> Option<[u8; 3]> {
    let b = s.as_bytes();
    (b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic)).then(|| [b[0], b[1], b[2]].map(|c| c.to_ascii_lowercase()))
}

/// A track's language: LanguageBCP47 when it maps to an ISO 639-2 code, else Language,
/// else Matroska's default, English.
pub fn track_language(language: Option<&str>, bcp47: Option<&str>) -> [u8; 3] {
    if let Some(tag) = bcp47 {
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let mapped = TWO_LETTER.iter().find(|(two, _)| *two == primary).map(|(_, three)| *three);
        if let Some(l) = mapped.and_then(three_letters).or_else(|| three_letters(&primary)) {
            return l;
        }
    }
    language.and_then(three_letters).unwrap_or(*b"eng")
}

/// Reads the metadata of a Video element's body into `t.meta`: pixel aspect, colour, HDR,
/// rotation. `t.width` and `t.height` must be read already.
pub fn read_video(t: &mut TrackEntry, body: &[u8], offset: u64) {
    let (mut dw, mut dh, mut unit, mut stereo) = (None, None, 0, 0);
    for c in children(body, offset).map_while(Result::ok) {
        match c.id {
            DISPLAY_WIDTH => dw = read_uint(c.body),
            DISPLAY_HEIGHT => dh = read_uint(c.body),
            DISPLAY_UNIT => unit = read_uint(c.body).unwrap_or(0),
            STEREO_MODE => stereo = read_uint(c.body).unwrap_or(0),
            COLOUR => read_colour(&mut t.meta, c.body, c.offset + c.header_len as u64),
            PROJECTION => t.meta.matrix = read_projection(c.body, c.offset + c.header_len as u64),
            _ => {}
        }
    }
    // As FFmpeg: the picture's aspect over the display's, for any unit but "unknown".
    // DisplayWidth and DisplayHeight default to the picture's size: a Matroska picture is
    // square unless they say otherwise (what the codec says does not count, for FFmpeg too).
    // Side-by-side or stacked stereo: the display size is one view's.
    let (w_mul, h_mul) = match stereo {
        1 | 8 | 9 | 11 => (2, 1),
        2 | 3 | 6 | 7 => (1, 2),
        _ => (1, 1),
    };
    if unit < 4 {
        let (dw, dh) = (dw.unwrap_or(t.width as u64), dh.unwrap_or(t.height as u64));
        t.meta.pixel_aspect = pixel_aspect(t.width, t.height, dw.saturating_mul(w_mul), dh.saturating_mul(h_mul));
    }
}

/// Pixel aspect of a picture shown at `dw` × `dh`: (height × dw) : (width × dh), reduced;
/// `None` when not computable.
pub fn pixel_aspect(width: u32, height: u32, dw: u64, dh: u64) -> Option<(u32, u32)> {
    let h = (height as u64).checked_mul(dw)?;
    let v = (width as u64).checked_mul(dh)?;
    if h == 0 || v == 0 {
        return None;
    }
    let (h, v) = crate::model::reduced_ratio(h, v);
    Some((u32::try_from(h).ok()?, u32::try_from(v).ok()?))
}

fn read_colour(meta: &mut TrackMeta, body: &[u8], offset: u64) {
    let (mut matrix, mut range, mut transfer, mut primaries) = (2u64, 0u64, 2u64, 2u64);
    let (mut max_cll, mut max_fall) = (0u64, 0u64);
    for c in children(body, offset).map_while(Result::ok) {
        let v = || read_uint(c.body).unwrap_or(0);
        match c.id {
            MATRIX_COEFFICIENTS => matrix = v(),
            RANGE => range = v(),
            TRANSFER_CHARACTERISTICS => transfer = v(),
            PRIMARIES => primaries = v(),
            MAX_CLL => max_cll = v(),
            MAX_FALL => max_fall = v(),
            MASTERING_METADATA => meta.mastering = read_mastering(c.body, c.offset + c.header_len as u64),
            _ => {}
        }
    }
    let code = |v: u64| v.min(255) as u8;
    if matrix != 2 || transfer != 2 || primaries != 2 || range == 1 || range == 2 {
        meta.colour = Some(Colour {
            primaries: code(primaries),
            transfer: code(transfer),
            matrix: code(matrix),
            full_range: range == 2,
        });
    }
    if max_cll > 0 || max_fall > 0 {
        let l = |v: u64| v.min(u16::MAX as u64) as u16;
        meta.light_level = Some(ContentLightLevel { max_cll: l(max_cll), max_fall: l(max_fall) });
    }
}

/// Rounds `v × scale` into an integer type's range; `None` for NaN, infinities, negatives.
fn scaled(v: f64, scale: f64, max: u64) -> Option<u64> {
    let x = (v * scale).round();
    (x.is_finite() && x >= 0.0).then(|| (x as u64).min(max))
}

fn read_mastering(body: &[u8], offset: u64) -> Option<MasteringDisplay> {
    let mut f = [None; 10];
    for c in children(body, offset).map_while(Result::ok) {
        if let Some(i) = MASTERING_FIELDS.iter().position(|&id| id == c.id) {
            f[i] = read_float(c.body);
        }
    }
    let xy = |i: usize| -> Option<(u16, u16)> {
        Some((scaled(f[i]?, 50_000.0, u16::MAX as u64)? as u16, scaled(f[i + 1]?, 50_000.0, u16::MAX as u64)? as u16))
    };
    let lum = |v: Option<f64>| scaled(v.unwrap_or(0.0), 10_000.0, u32::MAX as u64).map(|v| v as u32);
    Some(MasteringDisplay {
        primaries: [xy(2)?, xy(4)?, xy(0)?],
        white_point: xy(6)?,
        max_luminance: lum(f[8])?,
        min_luminance: lum(f[9])?,
    })
}

fn read_projection(body: &[u8], offset: u64) -> Option<[i32; 9]> {
    let (mut kind, mut yaw, mut pitch, mut roll) = (0, 0.0, 0.0, 0.0);
    for c in children(body, offset).map_while(Result::ok) {
        match c.id {
            PROJECTION_TYPE => kind = read_uint(c.body).unwrap_or(0),
            PROJECTION_POSE_YAW => yaw = read_float(c.body).unwrap_or(0.0),
            PROJECTION_POSE_PITCH => pitch = read_float(c.body).unwrap_or(0.0),
            PROJECTION_POSE_ROLL => roll = read_float(c.body).unwrap_or(0.0),
            _ => {}
        }
    }
    (kind == 0).then(|| pose_to_matrix(yaw, pitch, roll)).flatten()
}

/// The display matrix of a rectangular projection's pose, as FFmpeg builds it: a
/// rotation by `roll` degrees counter-clockwise, after a horizontal flip when `yaw` is 180.
/// `None` for the identity and for poses that are not a 2D rotation or flip.
pub fn pose_to_matrix(yaw: f64, pitch: f64, roll: f64) -> Option<[i32; 9]> {
    if !(roll.is_finite() && yaw.is_finite() && pitch.is_finite()) || pitch != 0.0 {
        return None;
    }
    if yaw != 0.0 && yaw != 180.0 && yaw != -180.0 {
        return None;
    }
    let hflip = yaw != 0.0;
    if !hflip && roll == 0.0 {
        return None;
    }
    // av_display_rotation_set(m, clockwise): here clockwise = -roll (or roll when flipped).
    let clockwise = if hflip { roll } else { -roll };
    let radians = -clockwise.to_radians();
    let (s, c) = radians.sin_cos();
    let fixed = |x: f64| (x * 65536.0) as i32;
    let mut m = [fixed(c), fixed(-s), 0, fixed(s), fixed(c), 0, 0, 0, 1 << 30];
    if hflip {
        for i in [0, 3, 6] {
            m[i] = m[i].wrapping_neg();
        }
    }
    Some(m)
}

/// The pose (yaw, roll in degrees) FFmpeg writes for a display matrix: only multiples of
/// an orthogonal matrix, possibly flipped horizontally; translation and scale are dropped.
pub fn matrix_to_pose(m: &[i32; 9]) -> Option<(f64, f64)> {
    let w = |i: usize| m[i] as i64;
    if m[2] != 0 || m[5] != 0 || (m[0] == 0 && m[1] == 0) {
        return None;
    }
    let yaw = if w(3) == w(1) && w(4) == -w(0) {
        180.0
    } else if w(3) != -w(1) || w(4) != w(0) {
        return None;
    } else {
        0.0
    };
    let roll = (m[3] as f64).atan2(m[4] as f64).to_degrees();
    (yaw != 0.0 || roll != 0.0).then_some((yaw, roll))
}

/// Writes the metadata children of a Video element: DisplayWidth/DisplayHeight (for a
/// pixel aspect other than 1:1: the display size in pixels when it is whole, as FFmpeg
/// writes it, otherwise the display aspect ratio with DisplayUnit 3), Colour, Projection.
pub fn put_video(v: &mut BytesMut, meta: &TrackMeta, dims: Dimensions) {
    if let Some((h, w)) = meta.pixel_aspect.filter(|(h, w)| h != w && *w > 0) {
        let (h, w) = (u64::from(h), u64::from(w));
        let stretched = u64::from(dims.width) * h;
        if stretched > 0 && dims.height > 0 && stretched % w == 0 {
            put_uint(v, DISPLAY_WIDTH, stretched / w);
            put_uint(v, DISPLAY_HEIGHT, u64::from(dims.height));
        } else {
            let dw = stretched;
            let dh = u64::from(dims.height) * w;
            let (rw, rh) = crate::model::reduced_ratio(dw, dh);
            if dw > 0 && dh > 0 {
                put_uint(v, DISPLAY_WIDTH, rw);
                put_uint(v, DISPLAY_HEIGHT, rh);
                put_uint(v, DISPLAY_UNIT, 3);
            }
        }
    }
    if meta.colour.is_some() || meta.mastering.is_some() || meta.light_level.is_some() {
        put_master(v, COLOUR, |c| {
            if let Some(col) = meta.colour {
                put_uint(c, MATRIX_COEFFICIENTS, col.matrix as u64);
                put_uint(c, RANGE, if col.full_range { 2 } else { 1 });
                put_uint(c, TRANSFER_CHARACTERISTICS, col.transfer as u64);
                put_uint(c, PRIMARIES, col.primaries as u64);
            }
            if let Some(l) = meta.light_level {
                put_uint(c, MAX_CLL, l.max_cll as u64);
                put_uint(c, MAX_FALL, l.max_fall as u64);
            }
            if let Some(m) = meta.mastering {
                put_master(c, MASTERING_METADATA, |mm| {
                    let [g, b, r] = m.primaries;
                    let xy = [r.0, r.1, g.0, g.1, b.0, b.1, m.white_point.0, m.white_point.1];
                    for (id, v) in MASTERING_FIELDS.iter().zip(xy) {
                        put_float(mm, *id, v as f64 / 50_000.0);
                    }
                    put_float(mm, MASTERING_FIELDS[8], m.max_luminance as f64 / 10_000.0);
                    put_float(mm, MASTERING_FIELDS[9], m.min_luminance as f64 / 10_000.0);
                });
            }
        });
    }
    if let Some((yaw, roll)) = meta.matrix.as_ref().and_then(matrix_to_pose) {
        put_master(v, PROJECTION, |p| {
            put_uint(p, PROJECTION_TYPE, 0);
            if yaw != 0.0 {
                put_float(p, PROJECTION_POSE_YAW, yaw);
            }
            if roll != 0.0 {
                put_float(p, PROJECTION_POSE_ROLL, roll);
            }
        });
    }
}

/// Writes a track's Name and Language (`und` too: the element's default is English).
pub fn put_entry(e: &mut BytesMut, meta: &TrackMeta, language: &str) {
    if let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty() && n.len() <= MAX_TEXT) {
        put_string(e, NAME, name);
    }
    put_string(e, super::ids::LANGUAGE, language);
}

impl SegmentInfo {
    /// The segment's metadata, with the global tags read elsewhere.
    pub fn movie_meta(&self, tags: Vec<(String, String)>) -> MovieMeta {
        let mut movie = MovieMeta { title: self.title.clone(), creation_time: self.date_utc, ..MovieMeta::default() };
        for (k, v) in tags {
            if k == "title" {
                movie.title.get_or_insert(v);
            } else if !movie.tags.iter().any(|(o, _)| *o == k) {
                movie.tags.push((k, v));
            }
        }
        movie
    }
}

/// Reads Info children that carry metadata (Title, DateUTC) into `info`.
pub fn read_info_child(info: &mut SegmentInfo, id: u32, body: &[u8]) {
    match id {
        TITLE if body.len() <= MAX_TEXT => info.title = Some(read_string(body)).filter(|t| !t.is_empty()),
        DATE_UTC if body.len() == 8 => {
            info.date_utc = read_int(body).map(|ns| ns.div_euclid(1_000_000_000).saturating_add(DATE_UTC_EPOCH))
        }
        _ => {}
    }
}

/// Writes Title and DateUTC into an Info element's body.
pub fn put_info(b: &mut BytesMut, movie: &MovieMeta) {
    if let Some(t) = movie.title.as_deref().filter(|t| !t.is_empty() && t.len() <= MAX_TEXT) {
        put_string(b, TITLE, t);
    }
    if let Some(ns) =
        movie.creation_time.and_then(|t| t.checked_sub(DATE_UTC_EPOCH)).and_then(|s| s.checked_mul(1_000_000_000))
    {
        put_element(b, DATE_UTC, &ns.to_be_bytes());
    }
}

/// The global tags (a Tag whose Targets name no track, edition, chapter or attachment)
/// of a Tags element's body, as (lower-case name, value).
pub fn parse_global_tags(body: &[u8], offset: u64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for tag in children(body, offset).map_while(Result::ok).filter(|c| c.id == TAG) {
        let tag_children = || children(tag.body, tag.offset + tag.header_len as u64).map_while(Result::ok);
        let targeted = tag_children().filter(|c| c.id == TARGETS).any(|t| {
            children(t.body, t.offset + t.header_len as u64).map_while(Result::ok).any(|c| TARGET_UIDS.contains(&c.id))
        });
        if targeted {
            continue;
        }
        for simple in tag_children().filter(|c| c.id == SIMPLE_TAG) {
            let (mut name, mut value) = (None, None);
            for c in children(simple.body, simple.offset + simple.header_len as u64).map_while(Result::ok) {
                match c.id {
                    TAG_NAME if c.body.len() <= MAX_TEXT => name = Some(read_string(c.body).to_ascii_lowercase()),
                    TAG_STRING if c.body.len() <= MAX_TEXT => value = Some(read_string(c.body)),
                    _ => {}
                }
            }
            if let (Some(n), Some(v)) = (name, value) {
                if out.len() < MAX_TAGS && !n.is_empty() && !SKIPPED_TAGS.contains(&n.as_str()) {
                    out.push((n, v));
                }
            }
        }
    }
    out
}

/// Writes a Tags element with the movie's tags (names upper-cased, as FFmpeg writes them),
/// when it has any.
pub fn put_tags(buf: &mut BytesMut, movie: &MovieMeta) {
    let tags: Vec<&(String, String)> = movie
        .tags
        .iter()
        .filter(|(k, v)| !k.is_empty() && k.len() <= MAX_TEXT && v.len() <= MAX_TEXT)
        .filter(|(k, _)| !SKIPPED_TAGS.contains(&k.to_ascii_lowercase().as_str()))
        .collect();
    if tags.is_empty() {
        return;
    }
    put_master(buf, super::ids::TAGS, |b| {
        put_master(b, TAG, |t| {
            put_master(t, TARGETS, |g| put_uint(g, TARGET_TYPE_VALUE, 50));
            for (k, v) in tags {
                put_master(t, SIMPLE_TAG, |s| {
                    put_string(s, TAG_NAME, &k.to_ascii_uppercase());
                    put_string(s, TAG_STRING, v);
                });
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::matroska::ids;

    fn entry(w: u32, h: u32) -> TrackEntry {
        TrackEntry { width: w, height: h, ..TrackEntry::default() }
    }

    fn video_of(meta: &TrackMeta, dims: Dimensions) -> TrackMeta {
        let mut v = BytesMut::new();
        put_video(&mut v, meta, dims);
        let mut t = entry(dims.width, dims.height);
        read_video(&mut t, &v, 0);
        t.meta
    }

    #[test]
    fn rotation_as_ffmpeg_maps_it() {
        // FFmpeg's matrix for "rotate=90" (ffprobe rotation 90): roll 90.
        let m90 = [0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(matrix_to_pose(&m90), Some((0.0, 90.0)));
        assert_eq!(pose_to_matrix(0.0, 0.0, 90.0), Some(m90));
        let m270 = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(matrix_to_pose(&m270), Some((0.0, -90.0)));
        assert_eq!(pose_to_matrix(0.0, 0.0, -90.0), Some(m270));
        let m180 = [-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30];
        assert_eq!(pose_to_matrix(0.0, 0.0, 180.0), Some(m180));
        assert_eq!(matrix_to_pose(&m180), Some((0.0, 180.0)));
        // Horizontal flip.
        let flip = [-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30];
        assert_eq!(matrix_to_pose(&flip), Some((180.0, 0.0)));
        assert_eq!(pose_to_matrix(180.0, 0.0, 0.0), Some(flip));
        // Identity, shear, pitch: nothing.
        assert_eq!(matrix_to_pose(&[65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]), None);
        assert_eq!(matrix_to_pose(&[65536, 5, 0, 0, 65536, 0, 0, 0, 1 << 30]), None);
        assert_eq!(matrix_to_pose(&[i32::MIN, i32::MIN, 0, i32::MIN, i32::MIN, 0, 0, 0, 0]), None);
        assert_eq!(pose_to_matrix(0.0, 10.0, 90.0), None);
        assert_eq!(pose_to_matrix(0.0, 0.0, f64::NAN), None);
        // Through the Video element.
        let meta = TrackMeta { matrix: Some(m90), ..TrackMeta::default() };
        let square = TrackMeta { pixel_aspect: Some((1, 1)), ..meta.clone() };
        assert_eq!(video_of(&meta, Dimensions { width: 64, height: 48 }), square, "no display size: square");
    }

    #[test]
    fn pixel_aspect_and_colour_round_trip() {
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
        assert_eq!(video_of(&meta, Dimensions { width: 64, height: 48 }), meta);
        assert_eq!(pixel_aspect(64, 48, 64, 48), Some((1, 1)));
        assert_eq!(pixel_aspect(64, 48, 8, 3), Some((2, 1)), "display unit 3 (aspect ratio)");
        assert_eq!(pixel_aspect(0, 48, 8, 3), None);
        assert_eq!(pixel_aspect(u32::MAX, u32::MAX, u64::MAX, 1), None);
    }

    #[test]
    fn languages() {
        assert_eq!(&track_language(None, None), b"eng", "Matroska's default");
        assert_eq!(&track_language(Some("und"), None), b"und");
        assert_eq!(&track_language(Some("fre"), None), b"fre");
        assert_eq!(&track_language(Some("fre"), Some("de-CH")), b"ger");
        assert_eq!(&track_language(Some("eng"), Some("x-klingon")), b"eng");
        assert_eq!(&track_language(Some("toolong"), None), b"eng");
        let mut e = BytesMut::new();
        put_entry(&mut e, &TrackMeta::default(), "und");
        assert_eq!(&e[..], &[0x22, 0xB5, 0x9C, 0x83, b'u', b'n', b'd']);
    }

    #[test]
    fn info_and_tags_round_trip() {
        let movie = MovieMeta {
            title: Some("T".into()),
            creation_time: Some(1_577_934_245),
            tags: vec![("artist".into(), "A".into()), ("comment".into(), "C".into())],
            cover: None,
        };
        let mut b = BytesMut::new();
        put_info(&mut b, &movie);
        let mut info = SegmentInfo::default();
        for c in children(&b, 0).map_while(Result::ok) {
            read_info_child(&mut info, c.id, c.body);
        }
        let mut t = BytesMut::new();
        put_tags(&mut t, &movie);
        let tags = children(&t, 0).map_while(Result::ok).find(|c| c.id == ids::TAGS).unwrap();
        let parsed = parse_global_tags(tags.body, tags.header_len as u64);
        assert_eq!(info.movie_meta(parsed), movie);
        // Every cut of the Tags body reads without panicking.
        for n in 0..tags.body.len() {
            parse_global_tags(&tags.body[..n], 0);
        }
    }

    #[test]
    fn track_targeted_tags_are_not_global() {
        let mut b = BytesMut::new();
        put_master(&mut b, TAG, |t| {
            put_master(t, TARGETS, |g| put_uint(g, 0x63C5, 7));
            put_master(t, SIMPLE_TAG, |s| {
                put_string(s, TAG_NAME, "ARTIST");
                put_string(s, TAG_STRING, "x");
            });
        });
        assert!(parse_global_tags(&b, 0).is_empty());
    }
}

/// The cover picture among an Attachments element's files: a JPEG or PNG, the one named
/// `cover.*` first. `data` is the whole element (header of `header_len` bytes), at `offset`;
/// the picture is sliced from it.
pub fn parse_cover(data: &Bytes, header_len: usize, offset: u64) -> Option<CoverArt> {
    let body = data.get(header_len..)?;
    let mut best: Option<(bool, CoverArt)> = None;
    for file in children(body, offset + header_len as u64).map_while(Result::ok).filter(|c| c.id == ATTACHED_FILE) {
        let (mut name, mut mime, mut range) = (String::new(), None, None);
        for c in children(file.body, file.offset + file.header_len as u64).map_while(Result::ok) {
            match c.id {
                FILE_NAME if c.body.len() <= MAX_TEXT => name = read_string(c.body).to_ascii_lowercase(),
                FILE_MEDIA_TYPE => {
                    mime = match read_string(c.body).as_str() {
                        "image/jpeg" => Some("image/jpeg"),
                        "image/png" => Some("image/png"),
                        _ => None,
                    }
                }
                FILE_DATA if c.body.len() <= MAX_COVER => {
                    let start = c
                        .offset
                        .checked_sub(offset)
                        .and_then(|d| usize::try_from(d).ok())
                        .and_then(|s| s.checked_add(c.header_len));
                    range = start.map(|s| s..s + c.body.len());
                }
                _ => {}
            }
        }
        let (Some(mime), Some(range)) = (mime, range) else { continue };
        let Some(bytes) = (range.end <= data.len()).then(|| data.slice(range)) else { continue };
        let named = name.starts_with("cover.");
        if best.as_ref().is_none_or(|(b, _)| named && !b) {
            best = Some((named, CoverArt { mime, data: bytes }));
        }
    }
    best.map(|(_, c)| c)
}

/// Writes an Attachments element with the movie's cover (`cover.jpg` or `cover.png`), when
/// it has one.
pub fn put_attachments(buf: &mut BytesMut, movie: &MovieMeta) {
    let Some(cover) = movie.cover.as_ref().filter(|c| !c.data.is_empty() && c.data.len() <= MAX_COVER) else {
        return;
    };
    put_master(buf, super::ids::ATTACHMENTS, |a| {
        put_master(a, ATTACHED_FILE, |f| {
            put_string(f, FILE_NAME, if cover.mime == "image/png" { "cover.png" } else { "cover.jpg" });
            put_string(f, FILE_MEDIA_TYPE, cover.mime);
            put_element(f, FILE_DATA, &cover.data);
            put_uint(f, FILE_UID, 1);
        });
    });
}

#[cfg(test)]
mod cover_tests {
    use super::*;
    use crate::formats::matroska::ebml::parse_header;

    #[test]
    fn cover_round_trip_and_choice() {
        let movie = MovieMeta {
            cover: Some(CoverArt { mime: "image/png", data: Bytes::from_static(b"\x89PNG....") }),
            ..MovieMeta::default()
        };
        let mut b = BytesMut::new();
        put_attachments(&mut b, &movie);
        let data = b.freeze();
        let Ok(super::super::ebml::HeaderParse::Header(h)) = parse_header(&data, 100) else { panic!() };
        assert_eq!(parse_cover(&data, h.header_len, 100), movie.cover);
        for n in 0..data.len() {
            let _ = parse_cover(&data.slice(..n), h.header_len.min(n), 100);
        }
        // A font is not a cover.
        let mut f = BytesMut::new();
        put_master(&mut f, super::super::ids::ATTACHMENTS, |a| {
            put_master(a, ATTACHED_FILE, |f| {
                put_string(f, FILE_NAME, "font.ttf");
                put_string(f, FILE_MEDIA_TYPE, "font/ttf");
                put_element(f, FILE_DATA, b"x");
            })
        });
        assert_eq!(parse_cover(&f.freeze(), 5, 0), None);
    }
}
