//! Tests of the HEVC parsers.

use super::super::h264::tests::{assert_truncations_fail, escape, fuzz, invalid_with, BitWriter};
use super::*;

// Parameter sets written by x265 through FFmpeg, with the sizes ffprobe reports.
/// 1000x562 Main (1000x568 coded, conformance window bottom 3 chroma rows).
const VPS_MAIN: &[u8] = &[
    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x5d, 0x95, 0x98, 0x09,
];
const SPS_MAIN: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0,
    0x07, 0xd2, 0x00, 0x8e, 0x7c, 0x99, 0x65, 0x66, 0x92, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00, 0x00, 0x03, 0x00, 0x08,
    0x00, 0x00, 0x03, 0x00, 0xc8, 0x40,
];
const PPS_MAIN: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
/// 998x562 Rext, 4:2:2 10-bit.
const SPS_REXT: &[u8] = &[
    0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9d, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x5d, 0xb0, 0x07,
    0xd2, 0x00, 0x8e, 0x75, 0x3b, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20,
    0x00, 0x00, 0x03, 0x03, 0x21,
];
/// The 23-byte header of the `hvcC` FFmpeg wrote for VPS_MAIN/SPS_MAIN/PPS_MAIN
/// (numOfArrays 3; FFmpeg's fourth array, an x265 SEI, is left out).
const HVCC_MAIN_HEADER: &[u8] = &[
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8,
    0x00, 0x00, 0x0f, 0x03,
];

fn hvcc_main() -> Vec<u8> {
    let mut v = HVCC_MAIN_HEADER.to_vec();
    for (t, nal) in [(0x20, VPS_MAIN), (0x21, SPS_MAIN), (0x22, PPS_MAIN)] {
        v.extend([t, 0, 1]);
        v.extend((nal.len() as u16).to_be_bytes());
        v.extend(nal);
    }
    v
}

/// An SPS with sub-layers, 4:2:0, and a conformance window.
fn sps_with_sub_layers(sub_layers_minus1: u8, window: [u32; 4]) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(4, 0);
    w.bits(3, u64::from(sub_layers_minus1));
    w.bit(true);
    // general PTL: space 0, tier 1, profile 2 (Main 10)
    w.bits(2, 0);
    w.bit(true);
    w.bits(5, 2);
    w.bits(32, 0x2000_0000);
    w.bits(48, 0xb000_0000_0000);
    w.bits(8, 150);
    for i in 0..sub_layers_minus1 {
        w.bit(i % 2 == 0); // profile present
        w.bit(true); // level present
    }
    if sub_layers_minus1 > 0 {
        w.bits(2 * (8 - u32::from(sub_layers_minus1)), 0);
    }
    for i in 0..sub_layers_minus1 {
        if i % 2 == 0 {
            w.bits(32, 0xffff_ffff);
            w.bits(32, 0);
            w.bits(24, 0xabcdef);
        }
        w.bits(8, 0x55);
    }
    w.ue(0);
    w.ue(1);
    w.ue(3840);
    w.ue(2176);
    w.bit(true);
    for v in window {
        w.ue(v);
    }
    w.ue(2);
    w.ue(2);
    w.ue(4); // log2_max_pic_order_cnt_lsb_minus4, not parsed
    let mut nal = vec![0x42, 0x01];
    nal.extend(escape(&w.finish_rbsp()));
    nal
}

#[test]
fn nal_header_helpers() {
    assert_eq!(nal_type(0x40), NAL_VPS);
    assert_eq!(nal_type(0x42), NAL_SPS);
    assert_eq!(nal_type(0x44), NAL_PPS);
    assert_eq!(nal_type(0x46), NAL_AUD);
    assert_eq!(nal_type(0x4e), NAL_PREFIX_SEI);
    assert_eq!(nal_type(0x26), NAL_IDR_W_RADL);
    assert!(is_irap(NAL_IDR_W_RADL) && is_irap(NAL_CRA) && is_irap(16) && is_irap(23));
    assert!(!is_irap(1) && !is_irap(24) && !is_irap(NAL_VPS));
    assert_eq!(first_slice_segment_in_pic(&[0x26, 0x01, 0xaf]), Some(true));
    assert_eq!(first_slice_segment_in_pic(&[0x02, 0x01, 0x2f]), Some(false));
    assert_eq!(first_slice_segment_in_pic(&[0x40, 0x01, 0xff]), None);
    assert_eq!(first_slice_segment_in_pic(&[0x26, 0x01]), None);
    assert_eq!(first_slice_segment_in_pic(&[]), None);
}

#[test]
fn real_sps() {
    let info = parse_sps(SPS_MAIN).unwrap();
    assert_eq!(info.dims, Dimensions { width: 1000, height: 562 });
    assert_eq!((info.pic_width_in_luma_samples, info.pic_height_in_luma_samples), (1000, 568));
    assert_eq!(info.conformance_window, [0, 0, 0, 3]);
    assert_eq!((info.ptl.general_profile_idc, info.ptl.general_level_idc), (1, 93));
    assert_eq!(info.ptl.general_constraint_indicator_flags, 0x9000_0000_0000);
    let info = parse_sps(SPS_REXT).unwrap();
    assert_eq!(info.dims, Dimensions { width: 998, height: 562 });
    assert_eq!((info.chroma_format_idc, info.bit_depth_luma_minus8), (2, 2));
    assert_eq!(info.ptl.general_profile_idc, 4);
    assert!(matches!(sps_dimensions(PPS_MAIN), Err(CodecError::Invalid { .. })));
}

#[test]
fn sps_sub_layers_and_window() {
    for sub in 0..=6 {
        let sps = sps_with_sub_layers(sub, [4, 6, 0, 8]);
        let info = parse_sps(&sps).unwrap();
        assert_eq!(info.max_sub_layers, sub + 1);
        assert_eq!(info.ptl.general_level_idc, 150);
        assert_eq!(info.ptl.general_profile_compatibility_flags, 0x2000_0000);
        assert!(info.ptl.general_tier_flag);
        assert_eq!((info.bit_depth_luma_minus8, info.bit_depth_chroma_minus8), (2, 2));
        assert_eq!(info.dims, Dimensions { width: 3820, height: 2160 });
    }
    let sps = sps_with_sub_layers(1, [1920, 0, 0, 0]);
    assert!(matches!(sps_dimensions(&sps), Err(CodecError::Invalid { .. })));
}

#[test]
fn sps_truncations_fail() {
    let synthetic = sps_with_sub_layers(3, [0, 0, 0, 8]);
    for sps in [SPS_MAIN, SPS_REXT, &synthetic[..]] {
        let full = sps_dimensions(sps).unwrap();
        let shortest = (0..sps.len()).find(|&n| sps_dimensions(&sps[..n]).is_ok()).unwrap();
        assert!(shortest > 15, "{shortest}");
        assert_truncations_fail(&sps[..shortest], sps_dimensions);
        for n in shortest..sps.len() {
            assert_eq!(sps_dimensions(&sps[..n]).unwrap(), full);
        }
    }
}

#[test]
fn sps_fuzz() {
    fuzz(SPS_MAIN, sps_dimensions);
    fuzz(&sps_with_sub_layers(5, [1, 1, 1, 1]), sps_dimensions);
    fuzz(&[], first_slice_segment_in_pic);
}

#[test]
fn hvcc_parse_and_roundtrip() {
    let rec = hvcc_main();
    let cfg = HvcConfig::parse(&rec).unwrap();
    assert_eq!((cfg.general_profile_idc, cfg.general_level_idc, cfg.nal_length_size), (1, 93, 4));
    assert_eq!(cfg.arrays.len(), 3);
    assert_eq!(cfg.units(NAL_SPS).next().unwrap(), SPS_MAIN);
    assert_eq!((cfg.num_temporal_layers, cfg.temporal_id_nested, cfg.chroma_format_idc), (1, true, 1));
    assert!(cfg.missing_parameter_sets().is_empty());
    assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 1000, height: 562 });
    assert_eq!(&cfg.to_bytes()[..], &rec[..]);
    let shared = Bytes::from(rec.clone());
    let zc = HvcConfig::parse_bytes(&shared).unwrap();
    assert_eq!(zc, cfg);
    assert_eq!(zc.arrays[0].1[0].as_ptr(), shared[28..].as_ptr());
    // Completeness bits and an extra SEI array survive a round trip.
    let mut v = rec.clone();
    v[22] = 4;
    v[23] |= 0x80;
    v.extend([0x27, 0, 1, 0, 3, 0x4e, 0x01, 0x80]);
    let cfg = HvcConfig::parse(&v).unwrap();
    assert_eq!(cfg.array_complete_mask, 1 << NAL_VPS);
    assert_eq!(cfg.arrays[3].0, NAL_PREFIX_SEI);
    assert_eq!(&cfg.to_bytes()[..], &v[..]);
}

#[test]
fn hvcc_from_parameter_sets_matches_ffmpeg() {
    let b = Bytes::from_static;
    let cfg = HvcConfig::from_parameter_sets(&[b(VPS_MAIN)], &[b(SPS_MAIN)], &[b(PPS_MAIN)]).unwrap();
    assert_eq!(&cfg.to_bytes()[..], &hvcc_main()[..]);
    let cfg = HvcConfig::from_parameter_sets(&[], &[b(SPS_REXT)], &[]).unwrap();
    assert_eq!(
        &cfg.to_bytes()[..23],
        &[
            0x01, 0x04, 0x08, 0x00, 0x00, 0x00, 0x9d, 0x08, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc, 0xfe, 0xfa,
            0xfa, 0x00, 0x00, 0x0f, 0x01
        ]
    );
    assert_eq!(cfg.missing_parameter_sets(), vec![NAL_VPS, NAL_PPS]);
    assert!(HvcConfig::from_parameter_sets(&[], &[], &[]).is_err());
    assert!(HvcConfig::from_parameter_sets(&[b(SPS_MAIN)], &[b(SPS_MAIN)], &[]).is_err());
    let synthetic = Bytes::from(sps_with_sub_layers(2, [0; 4]));
    let cfg = HvcConfig::from_parameter_sets(&[], &[synthetic], &[]).unwrap();
    assert_eq!((cfg.num_temporal_layers, cfg.general_tier_flag, cfg.general_profile_idc), (3, true, 2));
    assert_eq!(HvcConfig::parse(&cfg.to_bytes()).unwrap(), cfg);
}

#[test]
fn hvcc_rejections_and_leniency() {
    let good = hvcc_main();
    let err = |v: &[u8]| HvcConfig::parse(v).unwrap_err();
    assert!(invalid_with(&err(&vec![0; good.len()]), "all zeros"));
    let mut v = good.clone();
    v[21] = 0x0e;
    assert!(invalid_with(&err(&v), "lengthSizeMinusOne"));
    let mut v = good.clone();
    v[0] = 2;
    assert!(matches!(err(&v), CodecError::Unsupported { .. }));
    // Version 0 is accepted (some writers), as are records without parameter sets.
    let mut v = good.clone();
    v[0] = 0;
    assert_eq!(HvcConfig::parse(&v).unwrap().configuration_version, 0);
    let mut v = HVCC_MAIN_HEADER.to_vec();
    v[22] = 0;
    let cfg = HvcConfig::parse(&v).unwrap();
    assert_eq!(cfg.missing_parameter_sets(), vec![NAL_VPS, NAL_SPS, NAL_PPS]);
    assert!(cfg.dimensions().is_err());
    // A unit whose type does not match its array.
    let mut v = good.clone();
    v[23] = 0x21;
    assert!(invalid_with(&err(&v), "has type 32"));
    for size in [1u8, 2, 4] {
        let mut v = good.clone();
        v[21] = 0x0c | (size - 1);
        assert_eq!(HvcConfig::parse(&v).unwrap().nal_length_size, size);
    }
}

#[test]
fn hvcc_truncations_fail() {
    let rec = hvcc_main();
    assert_truncations_fail(&rec, HvcConfig::parse);
    assert_eq!(HvcConfig::parse(&rec[..30]).unwrap_err(), CodecError::Truncated { what: "hvcC", len: 30, need: 52 });
}

#[test]
fn hvcc_fuzz() {
    fuzz(&hvcc_main(), HvcConfig::parse);
    fuzz(&hvcc_main(), |d| HvcConfig::parse(d).map(|c| c.dimensions()));
}
