//! Tests of the AV1 parsers.

use super::super::h264::tests::{assert_truncations_fail, fuzz, invalid_with, BitWriter};
use super::seq::OperatingPoint;
use super::*;
use crate::codecs::Dimensions;
use bytes::Bytes;

// `av1C` records FFmpeg wrote for libaom / rav1e output, with what ffprobe reports.
/// libaom, 1000x562 4:2:0 8-bit, Main, level 4 (3.0).
const AV1C_420: &[u8] =
    &[0x81, 0x04, 0x0c, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xcf, 0xcf, 0x18, 0x9b, 0x5f, 0x20, 0x08];
/// libaom, 998x562 4:4:4 10-bit, High.
const AV1C_444_10: &[u8] =
    &[0x81, 0x24, 0x40, 0x00, 0x0a, 0x0b, 0x20, 0x00, 0x00, 0x24, 0xcf, 0xcb, 0x18, 0x9b, 0x5f, 0x28, 0x40];
/// libaom, 320x240 4:2:2 12-bit, Professional.
const AV1C_422_12: &[u8] =
    &[0x81, 0x40, 0x68, 0x00, 0x0a, 0x0b, 0x40, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x62, 0x20];
/// libaom, 320x240 monochrome.
const AV1C_MONO: &[u8] =
    &[0x81, 0x00, 0x1c, 0x00, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x2a];
/// rav1e, 642x362 4:2:0, level 31.
const AV1C_RAV1E: &[u8] = &[
    0x81, 0x1f, 0x0c, 0x00, 0x0a, 0x0e, 0x00, 0x00, 0x00, 0xfa, 0x62, 0x81, 0xb4, 0x88, 0x42, 0xa2, 0x04, 0x04, 0x04,
    0x28,
];
/// Starts of libaom temporal units: key frame (with sequence header), inter frame.
const TU_KEY: &[u8] = &[
    0x12, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xcf, 0xcf, 0x18, 0x9b, 0x5f, 0x20, 0x08, 0x32, 0xf4, 0x70, 0x14,
    0x00, 0xa0, 0xf8, 0x10, 0xd8,
];
const TU_INTER: &[u8] = &[0x12, 0x00, 0x32, 0xf5, 0x2c, 0x32, 0x01, 0xe0, 0x40, 0x00];
/// rav1e temporal unit with only a frame header showing an existing frame.
const TU_SHOW_EXISTING: &[u8] = &[0x12, 0x00, 0x1a, 0x01, 0xc8];

const ALL: [(&[u8], u32, u32); 5] = [
    (AV1C_420, 1000, 562),
    (AV1C_444_10, 998, 562),
    (AV1C_422_12, 320, 240),
    (AV1C_MONO, 320, 240),
    (AV1C_RAV1E, 642, 362),
];

#[test]
fn leb128() {
    assert_eq!(read_leb128(&[0x05]).unwrap(), (5, 1));
    assert_eq!(read_leb128(&[0xf5, 0x2c]).unwrap(), (5749, 2));
    assert_eq!(read_leb128(&[0x80, 0x80, 0x00]).unwrap(), (0, 3));
    assert_eq!(read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap(), (u32::MAX, 5));
    assert!(matches!(read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Err(CodecError::Invalid { .. })));
    assert!(matches!(read_leb128(&[0x80; 8]), Err(CodecError::Invalid { .. })));
    assert!(matches!(read_leb128(&[0x80]), Err(CodecError::Truncated { .. })));
    for v in [0u32, 127, 128, 5749, u32::MAX] {
        let mut out = Vec::new();
        write_leb128(&mut out, v);
        assert_eq!(read_leb128(&out).unwrap(), (v, out.len()));
    }
}

#[test]
fn obu_walking() {
    let list: Vec<_> = obus(TU_KEY).collect();
    assert_eq!(list[0].as_ref().unwrap().obu_type, OBU_TEMPORAL_DELIMITER);
    assert_eq!(list[1].as_ref().unwrap().range, 2..15);
    assert_eq!(list[1].as_ref().unwrap().payload, 4..15);
    // The frame OBU claims 14452 bytes: one error, then the end.
    assert_eq!(list.len(), 3);
    assert!(matches!(list[2], Err(CodecError::Truncated { .. })));
    assert_eq!(sequence_header_from_obus(TU_KEY), Some(2..15));
    assert_eq!(sequence_header_from_obus(TU_INTER), None);
    // The forbidden bit.
    assert_eq!(sequence_header_from_obus(&[0x92, 0x00]), None);
    // Extension header and an OBU without a size field.
    let obu = parse_obu(&[0x0c, 0x68, 0xaa, 0xbb]).unwrap();
    assert_eq!((obu.obu_type, obu.temporal_id, obu.spatial_id), (1, 3, 1));
    assert_eq!((obu.payload, obu.has_size_field), (2..4, false));
}

#[test]
fn real_sequence_headers() {
    for (rec, width, height) in ALL {
        let cfg = Av1Config::parse(rec).unwrap();
        assert_eq!(cfg.dimensions().unwrap(), Dimensions { width, height });
        // Rebuilding the record from its sequence header gives FFmpeg's bytes.
        let rebuilt = config_from_sequence_header(&cfg.config_obus).unwrap();
        assert_eq!(rebuilt, cfg);
        assert_eq!(&rebuilt.to_bytes()[..], rec);
    }
    let sh = parse_sequence_header(&AV1C_422_12[6..]).unwrap();
    assert_eq!((sh.color.bit_depth, sh.color.subsampling_x, sh.color.subsampling_y), (12, true, false));
    let sh = parse_sequence_header(&AV1C_MONO[6..]).unwrap();
    assert!(sh.color.mono_chrome);
    let sh = parse_sequence_header(&AV1C_RAV1E[6..]).unwrap();
    assert_eq!(sh.operating_points[0].seq_level_idx, 31);
}

/// A sequence header with timing and decoder model info, two operating points (the
/// first at a level that has a tier bit) and 12-bit 4:2:0 in profile 2.
fn synthetic_sequence_header(reduced: bool) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(3, 2);
    w.bit(false);
    w.bit(reduced);
    if reduced {
        w.bits(5, 9);
    } else {
        w.bit(true); // timing_info_present
        w.bits(32, 1001);
        w.bits(32, 60000);
        w.bit(true); // equal_picture_interval
        w.bits(3, 0b011); // uvlc 2
        w.bit(true); // decoder_model_info_present
        w.bits(5, 9); // buffer_delay_length_minus_1
        w.bits(32, 1);
        w.bits(5, 3);
        w.bits(5, 3);
        w.bit(true); // initial_display_delay_present
        w.bits(5, 1); // two operating points
        for (level, tier) in [(13u64, true), (5, false)] {
            w.bits(12, 0x101);
            w.bits(5, level);
            if level > 7 {
                w.bit(tier);
            }
            w.bit(true); // decoder_model_present_for_this_op
            w.bits(10, 7);
            w.bits(10, 7);
            w.bit(false);
            w.bit(true);
            w.bits(4, 9);
        }
    }
    w.bits(4, 11);
    w.bits(4, 11);
    w.bits(12, 3839);
    w.bits(12, 2159);
    if !reduced {
        w.bit(true); // frame_id_numbers_present
        w.bits(7, 0);
    }
    w.bits(3, 0b111);
    if !reduced {
        w.bits(4, 0);
        w.bit(true); // enable_order_hint
        w.bits(2, 0);
        w.bit(false); // seq_choose_screen_content_tools
        w.bit(true); // seq_force_screen_content_tools
        w.bit(false); // seq_choose_integer_mv
        w.bit(true); // seq_force_integer_mv
        w.bits(3, 6);
    }
    w.bits(3, 0);
    // color_config: high_bitdepth, twelve_bit, not mono, BT.2020 PQ
    w.bit(true);
    w.bit(true);
    w.bit(false);
    w.bit(true);
    w.bits(8, 9);
    w.bits(8, 16);
    w.bits(8, 9);
    w.bit(true); // color_range
    w.bit(true); // subsampling_x
    w.bit(true); // subsampling_y
    w.bits(2, 2); // chroma_sample_position
    w.bit(false);
    w.bit(true); // film grain
    w.finish_rbsp()
}

fn as_obu(payload: &[u8], size_field: bool) -> Vec<u8> {
    let mut v = vec![if size_field { 0x0a } else { 0x08 }];
    if size_field {
        write_leb128(&mut v, payload.len() as u32);
    }
    v.extend_from_slice(payload);
    v
}

#[test]
fn synthetic_sequence_header_fields() {
    let sh = parse_sequence_header(&synthetic_sequence_header(false)).unwrap();
    assert!(sh.timing_info_present && sh.decoder_model_info_present && sh.frame_id_numbers_present);
    assert_eq!(sh.operating_points.len(), 2);
    assert_eq!(sh.operating_points[0], OperatingPoint { idc: 0x101, seq_level_idx: 13, seq_tier: 1 });
    assert_eq!((sh.max_frame_width, sh.max_frame_height), (3840, 2160));
    assert_eq!(sh.color.bit_depth, 12);
    assert_eq!((sh.color.color_primaries, sh.color.transfer_characteristics), (9, 16));
    assert!(sh.film_grain_params_present);
    let cfg = config_from_sequence_header(&as_obu(&synthetic_sequence_header(false), true)).unwrap();
    assert_eq!((cfg.seq_profile, cfg.seq_level_idx_0, cfg.seq_tier_0), (2, 13, 1));
    assert!(cfg.high_bitdepth && cfg.twelve_bit && !cfg.monochrome);
    assert_eq!(cfg.chroma_sample_position, 2);
    let sh = parse_sequence_header(&synthetic_sequence_header(true)).unwrap();
    assert!(sh.reduced_still_picture_header);
    assert_eq!(sh.operating_points[0].seq_level_idx, 9);
    assert_eq!((sh.max_frame_width, sh.max_frame_height), (3840, 2160));
}

#[test]
fn sequence_header_without_size_field_gets_one() {
    let payload = &AV1C_420[6..];
    let cfg = config_from_sequence_header(&as_obu(payload, false)).unwrap();
    assert_eq!(&cfg.to_bytes()[..], AV1C_420);
    assert_eq!(
        dimensions_from_sequence_header(&as_obu(payload, false)).unwrap(),
        Dimensions { width: 1000, height: 562 }
    );
    assert!(matches!(config_from_sequence_header(&[0x12, 0x00]), Err(CodecError::Invalid { .. })));
}

#[test]
fn keyframes() {
    assert_eq!(is_keyframe(TU_KEY), Some(true));
    assert_eq!(is_keyframe(TU_INTER), Some(false));
    assert_eq!(is_keyframe(TU_SHOW_EXISTING), Some(false));
    assert_eq!(is_keyframe(&[0x12, 0x00]), None);
    assert_eq!(is_keyframe(&[]), None);
    // A hidden key frame is not a sync sample.
    assert_eq!(is_keyframe(&[0x12, 0x00, 0x32, 0x01, 0x00]), Some(false));
    // Reduced still picture header: every frame is a key frame.
    let mut tu = as_obu(&synthetic_sequence_header(true), true);
    tu.extend([0x32, 0x01, 0xff]);
    assert_eq!(is_keyframe(&tu), Some(true));
}

#[test]
fn av1c_parse_and_rejections() {
    let cfg = Av1Config::parse(AV1C_444_10).unwrap();
    assert_eq!((cfg.seq_profile, cfg.seq_level_idx_0, cfg.high_bitdepth), (1, 4, true));
    assert!(!cfg.chroma_subsampling_x && !cfg.chroma_subsampling_y);
    let shared = Bytes::from_static(AV1C_444_10);
    assert_eq!(Av1Config::parse_bytes(&shared).unwrap(), cfg);
    // No configOBUs is fine for the record, but gives no dimensions.
    let bare = Av1Config::parse(&AV1C_420[..4]).unwrap();
    assert!(bare.config_obus.is_empty() && bare.dimensions().is_err());
    let err = |v: &[u8]| Av1Config::parse(v).unwrap_err();
    assert!(invalid_with(&err(&[0; 17]), "all zeros"));
    assert!(invalid_with(&err(&[0x01, 0x04, 0x0c, 0]), "marker"));
    assert!(matches!(err(&[0x82, 0x04, 0x0c, 0]), CodecError::Unsupported { .. }));
    assert!(invalid_with(&err(&[0x81, 0xe4, 0x0c, 0]), "seq_profile"));
    let mut v = AV1C_420.to_vec();
    v[3] = 0x1a;
    assert_eq!(Av1Config::parse(&v).unwrap().initial_presentation_delay_minus_one, Some(10));
    assert_eq!(&Av1Config::parse(&v).unwrap().to_bytes()[..], &v[..]);
}

#[test]
fn av1c_truncations_fail() {
    for (rec, _, _) in ALL {
        // Every cut is either in the header or a partial configOBU; only the cut right
        // after the header (a record without configOBUs) is valid.
        assert_truncations_fail(&rec[..4], Av1Config::parse);
        for n in 5..rec.len() {
            assert!(matches!(Av1Config::parse(&rec[..n]), Err(CodecError::Invalid { .. })));
        }
        let obu = &rec[4..];
        assert_truncations_fail(obu, config_from_sequence_header);
        assert_truncations_fail(obu, dimensions_from_sequence_header);
    }
    let payload = synthetic_sequence_header(false);
    // Payload cuts: the trailing bits byte may go, anything earlier must fail.
    assert_truncations_fail(&payload[..payload.len() - 1], parse_sequence_header);
}

#[test]
fn av1_fuzz() {
    for (rec, _, _) in ALL {
        fuzz(rec, |d| Av1Config::parse(d).map(|c| c.dimensions()));
        fuzz(&rec[4..], config_from_sequence_header);
    }
    fuzz(&synthetic_sequence_header(false), parse_sequence_header);
    fuzz(TU_KEY, is_keyframe);
    fuzz(TU_KEY, sequence_header_from_obus);
    fuzz(TU_KEY, |d| obus(d).count());
}
