//! The `moof` box of a fragmented MP4: where each sample of the fragment is and when.

use super::boxes::{FourCc, Mp4Error, Reader, MAX_SAMPLE_SIZE, MAX_TRUN_SAMPLES};
use super::moov::Movie;
use super::sample_table::SampleInfo;

/// `sample_is_non_sync_sample` in ISO BMFF sample flags.
pub const FLAG_NON_SYNC: u32 = 0x0001_0000;

/// One sample of a fragment, with its absolute position in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragSample {
    /// Index of the track in [`Movie::tracks`].
    pub track: usize,
    pub info: SampleInfo,
    /// The sample's flags as the fragment gives them (ISO BMFF `sample_flags`).
    pub flags: u32,
}

/// Parses a whole `moof` (`data` includes its header) at absolute `offset`. `next_dts`
/// holds, per movie track, the decode time that follows the previous fragment; it is used
/// when a `traf` has no `tfdt`, and advanced past this fragment's samples.
pub fn parse_moof(
    data: &[u8],
    offset: u64,
    header_len: u32,
    movie: &Movie,
    next_dts: &mut [i64],
) -> Result<Vec<FragSample>, Mp4Error> {
    #[cfg(any(test, feature = "internals"))]
    crate::parse_count::count(crate::parse_count::Parsed::Moof);
    let moof = Reader::new(&data[header_len as usize..], offset + header_len as u64, FourCc::new(b"moof"));
    let mut samples = Vec::new();
    let mut prev_traf_end: Option<u64> = None;
    for child in moof.children() {
        let child = child?;
        if child.fourcc.0 != *b"traf" {
            continue;
        }
        let traf = child.reader();
        let header = TrafHeader::parse(&traf, offset, prev_traf_end, movie, next_dts)?;
        let (mut pos, mut dts) = (header.base, header.dts);
        for c in traf.children() {
            let c = c?;
            if c.fourcc.0 == *b"trun" {
                read_trun(&c, &header, &mut pos, &mut dts, &mut samples)?;
            }
        }
        next_dts[header.track] = dts;
        prev_traf_end = Some(pos);
    }
    Ok(samples)
}

/// What a `traf`'s `tfhd` and `tfdt` say about the samples of its runs.
struct TrafHeader {
    /// Index of the track in [`Movie::tracks`].
    track: usize,
    track_id: u32,
    /// Where the first run's data is when it gives no `data_offset`, and what the
    /// `data_offset`s count from.
    base: u64,
    /// Decode time of the first sample.
    dts: i64,
    description: u32,
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
}

impl TrafHeader {
    /// Reads the `tfhd` and `tfdt` of `traf`, with the track's `trex` defaults, and where
    /// the previous `traf` ended (`prev_traf_end`) and the movie's `next_dts` for the rest.
    fn parse(
        traf: &Reader<'_>,
        moof_offset: u64,
        prev_traf_end: Option<u64>,
        movie: &Movie,
        next_dts: &[i64],
    ) -> Result<Self, Mp4Error> {
        let mut tfhd = None;
        let mut tfdt = None;
        for c in traf.children() {
            let c = c?;
            match &c.fourcc.0 {
                b"tfhd" => tfhd = Some(c),
                b"tfdt" => tfdt = Some(read_tfdt(&c)?),
                _ => {}
            }
        }
        let Some(tfhd) = tfhd else {
            return Err(traf.error("'traf' without 'tfhd'"));
        };
        let mut r = tfhd.reader();
        let (_, flags) = r.full_header()?;
        let track_id = r.u32()?;
        let Some(track) = movie.track_index(track_id) else {
            return Err(r.error(format!("fragment for track {track_id}, which the moov does not declare")));
        };
        let trex = movie.tracks[track].trex.unwrap_or_default();
        let base_data_offset = if flags & 0x1 != 0 { Some(r.u64()?) } else { None };
        let description = if flags & 0x2 != 0 { r.u32()? } else { trex.default_sample_description_index.max(1) };
        let default_duration = if flags & 0x8 != 0 { r.u32()? } else { trex.default_sample_duration };
        let default_size = if flags & 0x10 != 0 { r.u32()? } else { trex.default_sample_size };
        let default_flags = if flags & 0x20 != 0 { r.u32()? } else { trex.default_sample_flags };
        let base = match base_data_offset {
            Some(b) => b,
            None if flags & 0x2_0000 != 0 => moof_offset,
            None => prev_traf_end.unwrap_or(moof_offset),
        };
        let dts = tfdt.unwrap_or(next_dts[track]);
        Ok(TrafHeader { track, track_id, base, dts, description, default_duration, default_size, default_flags })
    }
}

/// The base media decode time of a `tfdt`.
fn read_tfdt(c: &super::boxes::Child<'_>) -> Result<i64, Mp4Error> {
    let mut r = c.reader();
    let (version, _) = r.full_header()?;
    let at = r.offset();
    let t = if version == 1 { r.u64()? } else { r.u32()? as u64 };
    i64::try_from(t)
        .map_err(|_| Mp4Error::invalid("'tfdt' box", at, format!("base media decode time {t} is past 2^63")))
}

/// `total` samples (`what`) are within [`MAX_TRUN_SAMPLES`].
fn check_sample_count(what: &str, offset: u64, total: usize) -> Result<(), Mp4Error> {
    if total > MAX_TRUN_SAMPLES as usize {
        return Err(Mp4Error::TooLarge {
            what: what.into(),
            offset,
            size: total as u64,
            limit: MAX_TRUN_SAMPLES as u64,
        });
    }
    Ok(())
}

/// Appends the samples of the `trun` `c` to `samples`, from data position `pos` and
/// decode time `dts`, and advances both past them.
fn read_trun(
    c: &super::boxes::Child<'_>,
    h: &TrafHeader,
    pos: &mut u64,
    dts: &mut i64,
    samples: &mut Vec<FragSample>,
) -> Result<(), Mp4Error> {
    let mut r = c.reader();
    let (version, tr_flags) = r.full_header()?;
    let count = r.u32()?;
    check_sample_count("'trun' sample_count", c.offset, count as usize)?;
    if tr_flags & 0x1 != 0 {
        let rel = r.i32()? as i64;
        *pos = h.base.checked_add_signed(rel).ok_or_else(|| r.error("data_offset before the file start"))?;
    }
    let first_flags = if tr_flags & 0x4 != 0 { Some(r.u32()?) } else { None };
    let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| tr_flags & f != 0).count() * 4;
    r.check_entries(count as u64, per_sample, "trun sample_count")?;
    // Runs with no per-sample fields take no bytes per sample: bound the fragment.
    check_sample_count("samples of one 'moof'", c.offset, samples.len() + count as usize)?;
    let track_id = h.track_id;
    for i in 0..count {
        let duration = if tr_flags & 0x100 != 0 { r.u32()? } else { h.default_duration };
        let size = if tr_flags & 0x200 != 0 { r.u32()? } else { h.default_size };
        let sflags = if tr_flags & 0x400 != 0 { r.u32()? } else { h.default_flags };
        let sflags = if i == 0 { first_flags.unwrap_or(sflags) } else { sflags };
        let cts_offset = if tr_flags & 0x800 != 0 {
            let v = r.u32()?;
            if version == 0 {
                v as i64
            } else {
                v as i32 as i64
            }
        } else {
            0
        };
        if size > MAX_SAMPLE_SIZE {
            return Err(Mp4Error::TooLarge {
                what: format!("sample {i} of track {track_id}"),
                offset: c.offset,
                size: size as u64,
                limit: MAX_SAMPLE_SIZE as u64,
            });
        }
        let (p, d) = (*pos, *dts);
        let info = SampleInfo {
            index: i,
            offset: p,
            size,
            dts: d,
            cts_offset,
            duration,
            sync: sflags & FLAG_NON_SYNC == 0,
            description: h.description,
        };
        let (Some(next_pos), Some(next_dts), Some(_pts)) =
            (p.checked_add(size as u64), d.checked_add(duration as i64), d.checked_add(cts_offset))
        else {
            return Err(Mp4Error::invalid(
                "'trun' box",
                c.offset,
                format!(
                    "sample {i} of track {track_id} (offset {p}, {size} bytes, decode time {d}) runs past \
                     2^64 bytes or 2^63 ticks"
                ),
            ));
        };
        samples.push(FragSample { track: h.track, info, flags: sflags });
        *pos = next_pos;
        *dts = next_dts;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::CodecError;
    use crate::formats::mp4::moov::Mp4Track;
    use crate::model::TrackKind;

    fn bx(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(fourcc);
        v.extend_from_slice(body);
        v
    }

    fn movie() -> Movie {
        let track = Mp4Track {
            track_id: 1,
            kind: TrackKind::Video,
            handler: FourCc::new(b"vide"),
            timescale: 1000,
            language: *b"und",
            edits: Vec::new(),
            sample_entry: bytes::Bytes::new(),
            sample_entry_fourcc: FourCc::new(b"avc1"),
            sample_entry_count: 1,
            dims: None,
            codec: Err(CodecError::Invalid { what: "test", reason: String::new() }),
            table: Default::default(),
            trex: None,
            encryption: None,
            meta: Default::default(),
        };
        Movie { timescale: 1000, duration: 0, tracks: vec![track], fragmented: true, meta: Default::default() }
    }

    /// A moof with one traf: tfhd (base data offset `base`), tfdt (version 1, `tfdt`), and
    /// a trun of `sizes` (duration 10 each).
    fn moof(base: u64, tfdt: u64, sizes: &[u32]) -> Vec<u8> {
        let mut tfhd = vec![0, 0, 0, 1, 0, 0, 0, 1];
        tfhd.extend_from_slice(&base.to_be_bytes());
        let mut tfdt_body = vec![1, 0, 0, 0];
        tfdt_body.extend_from_slice(&tfdt.to_be_bytes());
        let mut trun = vec![0, 0, 0x03, 0x00];
        trun.extend_from_slice(&(sizes.len() as u32).to_be_bytes());
        for s in sizes {
            trun.extend_from_slice(&10u32.to_be_bytes());
            trun.extend_from_slice(&s.to_be_bytes());
        }
        let traf = [bx(b"tfhd", &tfhd), bx(b"tfdt", &tfdt_body), bx(b"trun", &trun)].concat();
        bx(b"moof", &[bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]), bx(b"traf", &traf)].concat())
    }

    fn parse(m: &[u8]) -> Result<Vec<FragSample>, Mp4Error> {
        parse_moof(m, 0, 8, &movie(), &mut [0])
    }

    #[test]
    fn plain_fragment_parses() {
        let s = parse(&moof(1000, 5, &[3, 4])).unwrap();
        assert_eq!(s.iter().map(|s| (s.info.offset, s.info.dts)).collect::<Vec<_>>(), [(1000, 5), (1003, 15)]);
    }

    #[test]
    fn offsets_near_2_64_are_an_error_not_a_wrap() {
        let err = parse(&moof(u64::MAX - 5, 0, &[3, 4])).unwrap_err();
        assert!(err.to_string().contains("2^64"), "{err}");
    }

    #[test]
    fn decode_times_past_2_63_are_an_error() {
        let err = parse(&moof(0, u64::MAX, &[3])).unwrap_err();
        assert!(err.to_string().contains("2^63"), "{err}");
        let err = parse(&moof(0, i64::MAX as u64 - 5, &[3])).unwrap_err();
        assert!(err.to_string().contains("2^63"), "{err}");
    }

    #[test]
    fn runs_without_per_sample_fields_are_bounded_per_moof() {
        // Two runs of 2^20 default-sized samples take 16 bytes each but would be 2^21 samples.
        let mut tfhd = vec![0, 0, 0, 0x18, 0, 0, 0, 1];
        tfhd.extend_from_slice(&10u32.to_be_bytes());
        tfhd.extend_from_slice(&1u32.to_be_bytes());
        let mut trun = vec![0, 0, 0, 0];
        trun.extend_from_slice(&MAX_TRUN_SAMPLES.to_be_bytes());
        let traf = [bx(b"tfhd", &tfhd), bx(b"trun", &trun), bx(b"trun", &trun)].concat();
        let m = bx(b"moof", &[bx(b"mfhd", &[0; 8]), bx(b"traf", &traf)].concat());
        assert!(matches!(parse(&m), Err(Mp4Error::TooLarge { .. })));
    }

    #[test]
    fn counts_past_the_run_bytes_are_refused() {
        let mut m = moof(0, 0, &[3, 4]);
        // Claim 1000 samples in the trun that holds 2.
        let at = m.windows(4).position(|w| w == b"trun").unwrap() + 8;
        m[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(parse(&m).unwrap_err().to_string().contains("entries of"));
    }
}
