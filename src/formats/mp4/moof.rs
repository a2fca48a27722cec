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
    let moof = Reader::new(&data[header_len as usize..], offset + header_len as u64, FourCc::new(b"moof"));
    let mut samples = Vec::new();
    let mut prev_traf_end: Option<u64> = None;
    for child in moof.children() {
        let child = child?;
        if child.fourcc.0 != *b"traf" {
            continue;
        }
        let traf = child.reader();
        let mut tfhd = None;
        let mut tfdt = None;
        for c in traf.children() {
            let c = c?;
            match &c.fourcc.0 {
                b"tfhd" => tfhd = Some(c),
                b"tfdt" => {
                    let mut r = c.reader();
                    let (version, _) = r.full_header()?;
                    tfdt = Some(if version == 1 { r.u64()? as i64 } else { r.u32()? as i64 });
                }
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
            None if flags & 0x2_0000 != 0 => offset,
            None => prev_traf_end.unwrap_or(offset),
        };
        let mut dts = tfdt.unwrap_or(next_dts[track]);
        let mut pos = base;
        for c in traf.children() {
            let c = c?;
            if c.fourcc.0 != *b"trun" {
                continue;
            }
            let mut r = c.reader();
            let (version, tr_flags) = r.full_header()?;
            let count = r.u32()?;
            if count > MAX_TRUN_SAMPLES {
                return Err(Mp4Error::TooLarge {
                    what: "'trun' sample_count".into(),
                    offset: c.offset,
                    size: count as u64,
                    limit: MAX_TRUN_SAMPLES as u64,
                });
            }
            if tr_flags & 0x1 != 0 {
                let rel = r.i32()? as i64;
                pos = base.checked_add_signed(rel).ok_or_else(|| r.error("data_offset before the file start"))?;
            }
            let first_flags = if tr_flags & 0x4 != 0 { Some(r.u32()?) } else { None };
            let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| tr_flags & f != 0).count() * 4;
            r.check_entries(count as u64, per_sample, "trun sample_count")?;
            for i in 0..count {
                let duration = if tr_flags & 0x100 != 0 { r.u32()? } else { default_duration };
                let size = if tr_flags & 0x200 != 0 { r.u32()? } else { default_size };
                let sflags = if tr_flags & 0x400 != 0 { r.u32()? } else { default_flags };
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
                let info = SampleInfo {
                    index: i,
                    offset: pos,
                    size,
                    dts,
                    cts_offset,
                    duration,
                    sync: sflags & FLAG_NON_SYNC == 0,
                    description,
                };
                samples.push(FragSample { track, info, flags: sflags });
                pos += size as u64;
                dts += duration as i64;
            }
        }
        next_dts[track] = dts;
        prev_traf_end = Some(pos);
    }
    Ok(samples)
}
