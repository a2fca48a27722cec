//! Does a configuration record agree with the parameter sets a sample carries in-band?
//!
//! Many encoders (GStreamer's, hardware encoders, cameras) repeat their parameter sets in
//! every keyframe. Decoders use those, so a record that parses but describes another
//! stream (another resolution, profile or level) goes unnoticed by a player and breaks
//! everything that trusts the container: seeking previews, remuxers, hardware decoders
//! set up from the record. `codecpar-extract` compares the record with the stream's first
//! sample and, under `--params auto`, takes the reference's record when they disagree.

use bytes::Bytes;

use super::{av1, h264, hevc, slices, CodecConfig};

/// Compares the parameter sets in `sample`, one access unit as MP4 stores it, with those
/// of `config`'s record. Returns why they disagree; `None` when they agree, when the
/// sample carries no parameter set to compare, or when the record does not parse (that is
/// reported by [`CodecConfig::validate`]).
pub fn disagreement(config: &CodecConfig, sample: &[u8]) -> Option<String> {
    match config {
        CodecConfig::H264 { avcc, .. } => {
            let rec = h264::AvcConfig::parse_bytes(avcc).ok()?;
            let sets = match nal_units(sample, rec.nal_length_size, h264::nal_type) {
                Ok(units) => units,
                Err(reason) => return Some(reason),
            };
            for (nal_type, unit) in sets {
                let (name, known) = match nal_type {
                    h264::NAL_SPS => ("SPS", &rec.sps),
                    h264::NAL_PPS => ("PPS", &rec.pps),
                    _ => continue,
                };
                if !contains(known, unit) {
                    let detail = match (nal_type, rec.sps.first()) {
                        (h264::NAL_SPS, Some(own)) => differences(h264_summary(unit), h264_summary(own)),
                        _ => String::new(),
                    };
                    return Some(format!("the {name} in the first sample is not the avcC's{detail}"));
                }
            }
            None
        }
        CodecConfig::Hevc { hvcc, .. } => {
            let rec = hevc::HvcConfig::parse_bytes(hvcc).ok()?;
            let sets = match nal_units(sample, rec.nal_length_size, hevc::nal_type) {
                Ok(units) => units,
                Err(reason) => return Some(reason),
            };
            for (nal_type, unit) in sets {
                let name = match nal_type {
                    hevc::NAL_VPS => "VPS",
                    hevc::NAL_SPS => "SPS",
                    hevc::NAL_PPS => "PPS",
                    _ => continue,
                };
                let known: Vec<Bytes> = rec.units(nal_type).cloned().collect();
                if !contains(&known, unit) {
                    let detail = match (nal_type, known.first()) {
                        (hevc::NAL_SPS, Some(own)) => {
                            differences(size(hevc::sps_dimensions(unit)), size(hevc::sps_dimensions(own)))
                        }
                        _ => String::new(),
                    };
                    return Some(format!("the {name} in the first sample is not the hvcC's{detail}"));
                }
            }
            None
        }
        CodecConfig::Av1 { av1c, .. } => {
            let rec = av1::Av1Config::parse_bytes(av1c).ok()?;
            let own = &rec.config_obus[rec.sequence_header_obu()?];
            let own = &own[av1::parse_obu(own).ok()?.payload];
            for obu in av1::obus(sample) {
                let Ok(obu) = obu else {
                    return Some("the first sample is not a sequence of OBUs".into());
                };
                if obu.obu_type == av1::OBU_SEQUENCE_HEADER {
                    let inband = &sample[obu.payload.clone()];
                    if inband != own {
                        let detail = differences(
                            size(av1::dimensions_from_sequence_header(&sample[obu.range])),
                            size(rec.dimensions()),
                        );
                        return Some(format!("the sequence header in the first sample is not the av1C's{detail}"));
                    }
                    return None;
                }
            }
            None
        }
        _ => None,
    }
}

/// What `--params auto` keeps for a track whose own record parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Take the reference's record instead of the stream's.
    pub use_reference: bool,
    /// Why, for the run's notes (without the track number); `None` when there is nothing
    /// to say (the stream's record fits and the reference's is the same or was not needed).
    pub note: Option<String>,
}

/// Decides between the stream's record and the reference's from the first samples of the
/// stream (access units in decode order, `samples[0]` its first):
///
/// 1. parameter sets the first sample carries in-band must be the record's
///    ([`disagreement`]); decoders follow the in-band ones;
/// 2. the first slice headers must parse with the record's parameter sets
///    ([`slices::check_h264`], [`slices::check_hevc`]): this is what catches a wrong but
///    parseable record in a stream without in-band parameter sets.
///
/// The record under which the bitstream reads is kept; when both do, the stream's.
pub fn decide(stream: &CodecConfig, reference: &CodecConfig, samples: &[&[u8]]) -> Decision {
    let keep = |note: Option<String>| Decision { use_reference: false, note };
    let Some(first) = samples.first() else { return keep(None) };
    if let Some(why) = disagreement(stream, first) {
        return match disagreement(reference, first) {
            None => Decision {
                use_reference: true,
                note: Some(format!(
                    "stream's codec parameters disagree with its bitstream ({why}); using the reference's"
                )),
            },
            Some(also) => keep(Some(format!(
                "stream's codec parameters disagree with its bitstream ({why}), and so do the reference's \
                 ({also}); keeping the stream's (decoders follow the bitstream)"
            ))),
        };
    }
    let check = |config: &CodecConfig| match config {
        CodecConfig::H264 { avcc, .. } => Some(slices::check_h264(avcc, samples)),
        CodecConfig::Hevc { hvcc, .. } => Some(slices::check_hevc(hvcc, samples)),
        _ => None,
    };
    let Some(own) = check(stream) else { return keep(None) };
    let same = match (stream, reference) {
        (CodecConfig::H264 { avcc: a, .. }, CodecConfig::H264 { avcc: b, .. }) => a == b,
        (CodecConfig::Hevc { hvcc: a, .. }, CodecConfig::Hevc { hvcc: b, .. }) => a == b,
        _ => false,
    };
    match own {
        Ok(c) if c.slices == 0 => keep(None),
        Ok(c) if same || c.inband_parameter_sets => keep(None),
        Ok(c) => keep(Some(format!(
            "the first {} slice headers parse with the stream's codec parameters; keeping them (the \
             reference's differ{})",
            c.slices,
            match check(reference) {
                Some(Ok(_)) => ", and the slices parse with them too",
                Some(Err(_)) => ", and the slices do not parse with them",
                None => "",
            }
        ))),
        Err(why) => match check(reference) {
            Some(Ok(r)) if r.slices > 0 => Decision {
                use_reference: true,
                note: Some(format!(
                    "the stream's first slices do not parse with its own codec parameters ({why}); they do with \
                     the reference's ({} slice headers read): using the reference's",
                    r.slices
                )),
            },
            Some(Err(also)) if !same => keep(Some(format!(
                "the stream's first slices do not parse with its own codec parameters ({why}), nor with the \
                 reference's ({also}); keeping the stream's"
            ))),
            _ => keep(Some(format!(
                "the stream's first slices do not parse with its codec parameters ({why}); keeping them"
            ))),
        },
    }
}

/// The NAL units of a length-prefixed sample with their types, or why it does not split.
fn nal_units(sample: &[u8], length_size: u8, nal_type: fn(u8) -> u8) -> Result<Vec<(u8, &[u8])>, String> {
    let mut units = Vec::new();
    for unit in h264::length_prefixed(sample, length_size) {
        let unit = unit.map_err(|e| {
            format!("the first sample does not split into NAL units with the record's {length_size}-byte lengths ({e})")
        })?;
        if let Some(&first) = unit.first() {
            units.push((nal_type(first), unit));
        }
    }
    Ok(units)
}

/// Whether `unit` is one of `known`, ignoring trailing zero bytes (allowed after a NAL
/// unit and written by some encoders in one place but not the other).
fn contains(known: &[Bytes], unit: &[u8]) -> bool {
    let trim = |b: &[u8]| b.len() - b.iter().rev().take_while(|&&x| x == 0).count();
    let unit = &unit[..trim(unit)];
    known.iter().any(|k| &k[..trim(k)] == unit)
}

/// Profile, level and picture size of an H.264 SPS.
fn h264_summary(sps: &[u8]) -> String {
    let (profile, level) = (sps.get(1).copied().unwrap_or(0), sps.get(3).copied().unwrap_or(0));
    format!("profile {profile} level {level} {}", size(h264::sps_dimensions(sps)))
}

fn size(dims: Result<super::Dimensions, super::CodecError>) -> String {
    dims.map(|d| format!("{}x{}", d.width, d.height)).unwrap_or_else(|_| "unknown size".into())
}

/// " (A in-band, B in the record)", or nothing when the summaries say the same.
fn differences(inband: String, record: String) -> String {
    if inband == record {
        return String::new();
    }
    format!(" ({inband} in-band, {record} in the record)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::Dimensions;

    /// Baseline SPS for 320x240 (profile 66, level 13) and one PPS.
    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xe8, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn h264(sps: &[u8]) -> CodecConfig {
        let rec =
            h264::AvcConfig::from_parameter_sets(&[Bytes::copy_from_slice(sps)], &[Bytes::from_static(PPS)]).unwrap();
        CodecConfig::H264 { avcc: rec.to_bytes(), dims: Dimensions::default() }
    }

    fn sample(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&(u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
        out
    }

    #[test]
    fn h264_agreement_and_disagreement() {
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00];
        let config = h264(SPS);
        assert_eq!(disagreement(&config, &sample(&[SPS, PPS, idr])), None);
        // Trailing zero bytes do not matter; no parameter sets at all is nothing to compare.
        assert_eq!(disagreement(&config, &sample(&[&[SPS, &[0, 0]].concat(), idr])), None);
        assert_eq!(disagreement(&config, &sample(&[idr])), None);

        // Another level in the record.
        let mut other = SPS.to_vec();
        other[3] = 0x1f;
        let why = disagreement(&h264(&other), &sample(&[SPS, PPS, idr])).unwrap();
        assert!(why.contains("SPS") && why.contains("avcC"), "{why}");

        // Another PPS in-band.
        let why = disagreement(&config, &sample(&[SPS, &[0x68, 0xee, 0x3c, 0x80], idr])).unwrap();
        assert!(why.contains("PPS"), "{why}");

        // Lengths that do not fit the record's length size.
        let why = disagreement(&config, &[0, 0, 0, 9, 0x65]).unwrap();
        assert!(why.contains("4-byte lengths"), "{why}");
    }

    #[test]
    fn records_that_do_not_parse_are_left_to_validate() {
        let zeroed = CodecConfig::H264 { avcc: Bytes::from_static(&[0; 16]), dims: Dimensions::default() };
        assert_eq!(disagreement(&zeroed, &sample(&[SPS, PPS])), None);
        let vp9 = CodecConfig::Vp8 { dims: Dimensions::default() };
        assert_eq!(disagreement(&vp9, &[1, 2, 3]), None);
    }
}
