//! Tests of the H.264 parsers, and bitstream-building helpers shared with the other codec tests.

use super::*;
use crate::codecs::Dimensions;
use bytes::Bytes;

/// MSB-first bit writer for building test bitstreams.
#[derive(Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    pub(crate) fn bit(&mut self, b: bool) {
        if self.bits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> (self.bits % 8);
        }
        self.bits += 1;
    }
    pub(crate) fn bits(&mut self, n: u32, v: u64) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }
    pub(crate) fn ue(&mut self, v: u32) {
        let v = u64::from(v) + 1;
        let len = 64 - v.leading_zeros();
        self.bits(len - 1, 0);
        self.bits(len, v);
    }
    pub(crate) fn se(&mut self, v: i32) {
        let k = if v > 0 { 2 * v as i64 - 1 } else { -2 * v as i64 };
        self.ue(k as u32);
    }
    /// rbsp_trailing_bits and the bytes.
    pub(crate) fn finish_rbsp(mut self) -> Vec<u8> {
        self.bit(true);
        while !self.bits.is_multiple_of(8) {
            self.bit(false);
        }
        self.bytes
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
    pub(crate) fn bit_count(&self) -> usize {
        self.bits
    }
}

/// Inserts emulation-prevention bytes.
pub(crate) fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Pseudo-random bytes from a linear congruential generator.
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    pub(crate) fn next_u8(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u8
    }
    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = usize::from(self.next_u8()) * max_len / 256;
        (0..len).map(|_| self.next_u8()).collect()
    }
}

/// True when `e` is [`CodecError::Invalid`] with a reason containing `needle`.
pub(crate) fn invalid_with(e: &CodecError, needle: &str) -> bool {
    matches!(e, CodecError::Invalid { reason, .. } if reason.contains(needle))
}

/// True when `r` is an `Err` for which [`invalid_with`] holds.
pub(crate) fn fails_invalid<T>(r: &Result<T, CodecError>, needle: &str) -> bool {
    r.as_ref().err().is_some_and(|e| invalid_with(e, needle))
}

/// Runs `f` on every prefix of `valid` shorter than `valid`, expecting an error.
pub(crate) fn assert_truncations_fail<T: std::fmt::Debug, E>(valid: &[u8], f: impl Fn(&[u8]) -> Result<T, E>) {
    for n in 0..valid.len() {
        assert!(f(&valid[..n]).is_err(), "prefix of {n} bytes parsed: {:?}", f(&valid[..n]).ok());
    }
}

/// Feeds `f` random byte strings, and random corruptions of `seed`, checking only that
/// it returns.
pub(crate) fn fuzz<R>(seed: &[u8], f: impl Fn(&[u8]) -> R) {
    let mut lcg = Lcg(0x1234_5678);
    for _ in 0..3000 {
        let _ = f(&lcg.bytes(64));
    }
    for _ in 0..3000 {
        let mut v = seed.to_vec();
        for _ in 0..1 + lcg.next_u8() % 4 {
            if v.is_empty() {
                break;
            }
            let i = usize::from(lcg.next_u8()) * v.len() / 256;
            v[i] = lcg.next_u8();
        }
        let cut = v.len() - usize::from(lcg.next_u8() % 4).min(v.len());
        let _ = f(&v[..cut]);
        let _ = f(&v);
    }
}

// Real parameter sets written by x264 (`ffmpeg -f lavfi -i testsrc2=s=WxH -c:v libx264`),
// with the sizes ffprobe reports.
/// 1280x720 High, 4:2:0 8-bit, level 3.1.
const SPS_720P: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60,
];
/// 1000x562 High (cropped from 1008x576).
const SPS_1000X562: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xfc, 0x12, 0x79, 0x62, 0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
    0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96,
];
const PPS_X264: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// The `avcC` FFmpeg wrote for SPS_1000X562 / PPS_X264.
pub(crate) const AVCC_1000X562: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1b, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xfc, 0x12, 0x79, 0x62,
    0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x18, 0x31, 0x96, 0x01, 0x00, 0x06,
    0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// 998x562 High 4:2:2 10-bit.
const SPS_HI422: &[u8] = &[
    0x67, 0x7a, 0x00, 0x1f, 0xb6, 0xcd, 0x94, 0x0f, 0xc1, 0x27, 0x9a, 0x3f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60,
];
/// 720x572 High, interlaced (frame_mbs_only_flag 0).
const SPS_INTERLACED: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xb4, 0x24, 0xfd, 0x60, 0x22, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00,
    0x03, 0x00, 0x64, 0x3e, 0x28, 0x53, 0x2c,
];
/// 722x482 High 4:4:4 Predictive.
const SPS_444: &[u8] = &[
    0x67, 0xf4, 0x00, 0x1e, 0x91, 0x9b, 0x28, 0x17, 0x07, 0xfc, 0x7c, 0x7e, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20,
    0x00, 0x00, 0x06, 0x41, 0xe2, 0xc5, 0xb2, 0xc0,
];
/// 640x360 Constrained Baseline.
const SPS_BASELINE: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03,
    0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48,
];

fn build_sps(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
    let mut w = BitWriter::default();
    f(&mut w);
    let mut nal = vec![0x67];
    nal.extend(escape(&w.finish_rbsp()));
    nal
}

/// Baseline SPS with the given size in macroblocks and cropping.
fn baseline_sps(w_mbs: u32, h_units: u32, frame_mbs_only: bool, crop: Option<[u32; 4]>) -> Vec<u8> {
    build_sps(|w| {
        w.bits(8, 66);
        w.bits(8, 0xc0);
        w.bits(8, 30);
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // poc type 2
        w.ue(1); // max_num_ref_frames
        w.bit(false);
        w.ue(w_mbs - 1);
        w.ue(h_units - 1);
        w.bit(frame_mbs_only);
        if !frame_mbs_only {
            w.bit(false);
        }
        w.bit(true);
        w.bit(crop.is_some());
        if let Some(c) = crop {
            for v in c {
                w.ue(v);
            }
        }
        w.bit(false); // vui
    })
}

#[test]
fn real_sps_dimensions() {
    let cases: [(&[u8], u32, u32); 6] = [
        (SPS_720P, 1280, 720),
        (SPS_1000X562, 1000, 562),
        (SPS_HI422, 998, 562),
        (SPS_INTERLACED, 720, 572),
        (SPS_444, 722, 482),
        (SPS_BASELINE, 640, 360),
    ];
    for (sps, width, height) in cases {
        assert_eq!(sps_dimensions(sps).unwrap(), Dimensions { width, height });
    }
    let info = parse_sps(SPS_HI422).unwrap();
    assert_eq!((info.profile_idc, info.chroma_format_idc, info.bit_depth_luma_minus8), (122, 2, 2));
    assert!(!parse_sps(SPS_INTERLACED).unwrap().frame_mbs_only);
    assert_eq!(parse_sps(SPS_444).unwrap().chroma_format_idc, 3);
}

#[test]
fn sps_cropping_and_fields() {
    // 1920x1080: 120x68 MBs cropped by 4 chroma rows (8 luma rows) at the bottom.
    let sps = baseline_sps(120, 68, true, Some([0, 0, 0, 4]));
    assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: 1920, height: 1080 });
    // Interlaced: map units are field MB pairs, crop unit is 4 rows.
    let sps = baseline_sps(45, 18, false, Some([1, 1, 0, 2]));
    assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: 716, height: 568 });
    // Cropping everything is invalid.
    let sps = baseline_sps(2, 2, true, Some([8, 8, 0, 0]));
    assert!(matches!(sps_dimensions(&sps), Err(CodecError::Invalid { .. })));
    // Not an SPS.
    assert!(matches!(sps_dimensions(&[0x68, 0xeb]), Err(CodecError::Invalid { .. })));
}

#[test]
fn sps_high_profile_444_scaling_lists_poc1() {
    let sps = build_sps(|w| {
        w.bits(8, 244);
        w.bits(8, 0);
        w.bits(8, 40);
        w.ue(3); // sps id
        w.ue(3); // chroma_format_idc 4:4:4
        w.bit(false); // separate_colour_plane
        w.ue(2); // bit depth luma 10
        w.ue(2);
        w.bit(false);
        w.bit(true); // scaling matrix present
        for i in 0..12 {
            let present = i % 3 == 0;
            w.bit(present);
            if present {
                // First delta sets nextScale to 0: the list stops reading.
                w.se(if i == 0 { -8 } else { 5 });
                if i != 0 {
                    for _ in 1..(if i < 6 { 16 } else { 64 }) {
                        w.se(1);
                    }
                }
            }
        }
        w.ue(0);
        w.ue(1); // poc type 1
        w.bit(false);
        w.se(-3);
        w.se(7);
        w.ue(3);
        for v in [1, -1, 2] {
            w.se(v);
        }
        w.ue(4);
        w.bit(false);
        w.ue(39); // 640
        w.ue(29); // 480
        w.bit(true);
        w.bit(true);
        w.bit(true);
        w.ue(3); // crop units of 1 pixel in 4:4:4
        w.ue(0);
        w.ue(1);
        w.ue(0);
    });
    let info = parse_sps(&sps).unwrap();
    assert_eq!(info.chroma_format_idc, 3);
    assert_eq!(info.bit_depth_luma_minus8, 2);
    assert_eq!(info.pic_order_cnt_type, 1);
    assert_eq!(info.seq_parameter_set_id, 3);
    assert_eq!(info.dims, Dimensions { width: 637, height: 479 });
}

#[test]
fn sps_emulation_prevention_is_removed() {
    // pic_width_in_mbs_minus1 = 2^24 - 1 is coded with 24 zero bits: the NAL needs
    // emulation-prevention bytes, which the parser must drop.
    let sps = baseline_sps(1 << 24, 3, true, Some([0, 1, 0, 1]));
    assert!(sps.windows(3).any(|w| w == [0, 0, 3]));
    assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: (1 << 28) - 2, height: 46 });
}

#[test]
fn sps_truncations_fail() {
    // The VUI after the cropping fields is not needed: every prefix either fails or
    // gives the full answer, and prefixes that end before the cropping fields fail.
    for sps in [SPS_720P, SPS_1000X562, SPS_HI422, SPS_INTERLACED, SPS_444, SPS_BASELINE] {
        let full = sps_dimensions(sps).unwrap();
        let shortest = (0..sps.len()).find(|&n| sps_dimensions(&sps[..n]).is_ok()).unwrap();
        assert!(shortest > 6, "{shortest}");
        assert_truncations_fail(&sps[..shortest], sps_dimensions);
        for n in shortest..sps.len() {
            assert_eq!(sps_dimensions(&sps[..n]).unwrap(), full);
        }
    }
}

#[test]
fn sps_fuzz() {
    for sps in [SPS_720P, SPS_HI422, SPS_INTERLACED, SPS_444] {
        fuzz(sps, sps_dimensions);
    }
    fuzz(&baseline_sps(10, 10, false, Some([1, 2, 3, 0])), sps_dimensions);
    fuzz(&[], first_mb_in_slice);
}

#[test]
fn avcc_parse_roundtrip() {
    let cfg = AvcConfig::parse(AVCC_1000X562).unwrap();
    assert_eq!((cfg.profile_idc, cfg.level_idc, cfg.nal_length_size), (100, 31, 4));
    assert_eq!(cfg.sps, vec![Bytes::from_static(SPS_1000X562)]);
    assert_eq!(cfg.pps, vec![Bytes::from_static(PPS_X264)]);
    assert_eq!(&cfg.ext[..], &[0xfd, 0xf8, 0xf8, 0x00]);
    assert_eq!(&cfg.to_bytes()[..], AVCC_1000X562);
    assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 1000, height: 562 });
    let shared = Bytes::from_static(AVCC_1000X562);
    let zero_copy = AvcConfig::parse_bytes(&shared).unwrap();
    assert_eq!(zero_copy, cfg);
    assert_eq!(zero_copy.sps[0].as_ptr(), shared[8..].as_ptr());
}

#[test]
fn avcc_from_parameter_sets_matches_ffmpeg() {
    let cfg =
        AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_1000X562)], &[Bytes::from_static(PPS_X264)]).unwrap();
    assert_eq!(&cfg.to_bytes()[..], AVCC_1000X562);
    // High 4:2:2 10-bit: the extension carries chroma_format 2 and bit depth 10.
    let cfg = AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_HI422)], &[]).unwrap();
    assert_eq!(&cfg.ext[..], &[0xfe, 0xfa, 0xfa, 0x00]);
    // Baseline: no extension.
    let cfg = AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_BASELINE)], &[]).unwrap();
    assert!(cfg.ext.is_empty());
    assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 640, height: 360 });
    assert_eq!(AvcConfig::parse(&cfg.to_bytes()).unwrap(), cfg);
    let sps = Bytes::from(baseline_sps(20, 15, true, None));
    let cfg = AvcConfig::from_parameter_sets(&[sps], &[]).unwrap();
    assert_eq!(cfg.dimensions().unwrap(), Dimensions { width: 320, height: 240 });
    assert!(AvcConfig::from_parameter_sets(&[], &[]).is_err());
    assert!(AvcConfig::from_parameter_sets(&[Bytes::from_static(PPS_X264)], &[]).is_err());
    assert!(AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS_720P)], &[Bytes::from_static(SPS_720P)]).is_err());
}

#[test]
fn avcc_rejections() {
    let good = AVCC_1000X562.to_vec();
    let reason = |r: Result<AvcConfig, CodecError>| match r {
        Err(CodecError::Invalid { reason, .. }) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(fails_invalid(&AvcConfig::parse(&[0; 9]), "all zeros"));
    assert!(reason(AvcConfig::parse(&vec![0u8; good.len()])).contains("all zeros"));
    let mut v = good.clone();
    v[0] = 2;
    assert!(reason(AvcConfig::parse(&v)).contains("configurationVersion"));
    let mut v = good.clone();
    v[4] = 0xfe;
    assert!(reason(AvcConfig::parse(&v)).contains("lengthSizeMinusOne"));
    for (b, size) in [(0xfc, 1), (0xfd, 2), (0xff, 4)] {
        let mut v = good.clone();
        v[4] = b;
        assert_eq!(AvcConfig::parse(&v).unwrap().nal_length_size, size);
    }
    let mut v = good.clone();
    v[5] = 0xe0;
    assert!(reason(AvcConfig::parse(&v)).contains("numOfSequenceParameterSets"));
    let mut v = good.clone();
    v[8] = 0x68;
    assert!(reason(AvcConfig::parse(&v)).contains("NAL type 8"));
    let mut v = good.clone();
    v[6] = 0;
    v[7] = 0;
    assert!(reason(AvcConfig::parse(&v)).contains("empty"));
}

#[test]
fn avcc_truncations_fail() {
    // Cutting inside the parameter sets fails; cutting the extension still parses.
    let rec = AVCC_1000X562;
    assert_truncations_fail(&rec[..rec.len() - 4], AvcConfig::parse);
    assert!(AvcConfig::parse(&rec[..rec.len() - 2]).is_ok());
    let err = AvcConfig::parse(&rec[..10]).unwrap_err();
    assert_eq!(err, CodecError::Truncated { what: "avcC", len: 10, need: 35 });
}

#[test]
fn avcc_fuzz() {
    fuzz(AVCC_1000X562, AvcConfig::parse);
    fuzz(AVCC_1000X562, |d| AvcConfig::parse(d).map(|c| c.dimensions()));
}

#[test]
fn nal_helpers() {
    assert_eq!(nal_type(0x65), NAL_IDR);
    assert_eq!(nal_type(0x41), NAL_SLICE);
    assert_eq!(nal_type(0x06), NAL_SEI);
    assert_eq!(nal_type(0x09), NAL_AUD);
    // first_mb_in_slice 0 ("1"), and 300 with an emulation-prevention byte in front.
    assert_eq!(first_mb_in_slice(&[0x65, 0x88, 0x84]), Some(0));
    let mut w = BitWriter::default();
    w.ue(300);
    w.bits(16, 0);
    let payload = escape(&w.finish());
    let mut nal = vec![0x41];
    nal.extend(payload);
    assert_eq!(first_mb_in_slice(&nal), Some(300));
    assert_eq!(first_mb_in_slice(&[0x41]), None);
    assert_eq!(first_mb_in_slice(&[]), None);
    assert_eq!(first_mb_in_slice(&[0x41, 0, 0, 3, 0, 0, 3, 0]), None);
}

#[test]
fn length_prefixed_iteration() {
    let data = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 0x09];
    let nals: Vec<_> = length_prefixed(&data, 4).collect::<Result<_, _>>().unwrap();
    assert_eq!(nals, vec![&[0x65, 0x88][..], &[][..], &[0x09][..]]);
    let ranges: Vec<_> = length_prefixed(&data, 4).ranges().collect::<Result<_, _>>().unwrap();
    assert_eq!(ranges, vec![4..6, 10..10, 14..15]);
    let two = [0, 1, 0xaa, 0, 2, 0xbb, 0xcc];
    assert_eq!(length_prefixed(&two, 2).count(), 2);
    let one = [1, 0xaa, 0];
    assert_eq!(length_prefixed(&one, 1).collect::<Vec<_>>(), vec![Ok(&[0xaa][..]), Ok(&[][..])]);
    // Overrun: one error, then the end.
    let bad = [0, 0, 0, 1, 0x65, 0, 0, 0, 9, 1, 2];
    let items: Vec<_> = length_prefixed(&bad, 4).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], Err(CodecError::Truncated { what: "NAL unit", len: 2, need: 9 }));
    // A partial prefix.
    let items: Vec<_> = length_prefixed(&[0, 0, 0, 1, 0x65, 0, 0], 4).collect();
    assert!(matches!(items[1], Err(CodecError::Truncated { what: "NAL length prefix", .. })));
    // Unsupported size.
    let items: Vec<_> = length_prefixed(&data, 3).collect();
    assert!(matches!(items[..], [Err(CodecError::Unsupported { .. })]));
    assert_eq!(length_prefixed(&[], 4).count(), 0);
}

#[test]
fn length_prefixed_fuzz() {
    let mut lcg = Lcg(99);
    for _ in 0..5000 {
        let data = lcg.bytes(48);
        let size = [1, 2, 3, 4, 0][usize::from(lcg.next_u8() % 5)];
        let items: Vec<_> = length_prefixed(&data, size).collect();
        // Errors only come last.
        if let Some(pos) = items.iter().position(|i| i.is_err()) {
            assert_eq!(pos, items.len() - 1);
        }
    }
}

#[test]
fn annexb_splitting() {
    let data = [0, 0, 0, 1, 0x67, 0xaa, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 3, 1, 0, 0];
    assert!(is_annexb(&data));
    assert!(is_annexb(&data[1..]));
    assert!(!is_annexb(&data[2..]));
    let ranges = annexb_nal_ranges(&data);
    assert_eq!(ranges, vec![4..6, 9..11, 16..22]);
    let mut out = BytesMut::new();
    annexb_to_length_prefixed(&data, &mut out);
    assert_eq!(&out[..], &[0, 0, 0, 2, 0x67, 0xaa, 0, 0, 0, 2, 0x68, 0xbb, 0, 0, 0, 6, 0x65, 0x88, 0, 0, 3, 1]);
    // Leading garbage is dropped; empty units are skipped; no start code, no units.
    assert_eq!(annexb_nal_ranges(&[7, 7, 0, 0, 1, 0, 0, 1, 9]), vec![8..9]);
    assert!(annexb_nal_ranges(&[1, 2, 3, 0, 0]).is_empty());
    assert!(annexb_nal_ranges(&[0, 0, 1]).is_empty());
    let mut lcg = Lcg(5);
    for _ in 0..3000 {
        let mut d = lcg.bytes(64);
        for b in &mut d {
            *b &= 3; // many start codes
        }
        for r in annexb_nal_ranges(&d) {
            assert!(r.start < r.end && r.end <= d.len() && d[r.end - 1] != 0);
        }
    }
}

/// A High-profile 1280x720 SPS with `max_num_ref_frames` `refs`.
fn high_sps(refs: u32) -> Vec<u8> {
    build_sps(|w| {
        w.bits(8, 100);
        w.bits(8, 0);
        w.bits(8, 31);
        w.ue(0); // sps id
        w.ue(1); // chroma_format_idc
        w.ue(0); // bit_depth_luma_minus8
        w.ue(0); // bit_depth_chroma_minus8
        w.bit(false); // qpprime_y_zero_transform_bypass_flag
        w.bit(false); // seq_scaling_matrix_present_flag
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(2); // poc type 2
        w.ue(refs);
        w.bit(false);
        w.ue(79);
        w.ue(44);
        w.bit(true); // frame_mbs_only
        w.bit(true); // direct_8x8_inference
        w.bit(false); // cropping
        w.bit(false); // vui
    })
}

/// A CAVLC PPS (id 0, SPS 0) with `weighted_bipred_idc` and `pic_init_qp_minus26`.
fn pps_with(weighted_bipred_idc: u64, pic_init_qp_minus26: i32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // pps id
    w.ue(0); // sps id
    w.bit(false); // entropy_coding_mode
    w.bit(false); // bottom_field_pic_order_in_frame_present
    w.ue(0); // num_slice_groups_minus1
    w.ue(0);
    w.ue(0);
    w.bit(false); // weighted_pred
    w.bits(2, weighted_bipred_idc);
    w.se(pic_init_qp_minus26);
    w.se(0);
    w.se(0);
    w.bit(true); // deblocking_filter_control_present
    w.bit(false);
    w.bit(false); // redundant_pic_cnt_present
    let mut nal = vec![0x68];
    nal.extend(escape(&w.finish_rbsp()));
    nal
}

/// As on main: an SPS with more than 16 reference frames, or a PPS with a reserved
/// `weighted_bipred_idc` or an out-of-range QP, still gives the record, its display size
/// and picture order counts; only the slice header check refuses it (from the record and
/// in-band).
#[test]
fn values_only_the_slice_check_bounds_are_kept_by_the_parse() {
    use crate::codecs::poc::H264PocState;
    use crate::codecs::slices::{check_h264, check_h264_with};
    let good_pps = Bytes::from(pps_with(0, 0));
    for (sps, pps, why) in [
        (high_sps(17), good_pps.clone(), "max_num_ref_frames is 17"),
        (high_sps(1), Bytes::from(pps_with(3, 0)), "weighted_bipred_idc is 3"),
        (high_sps(1), Bytes::from(pps_with(0, 30)), "pic_init_qp_minus26 is 30"),
    ] {
        let sps = Bytes::from(sps);
        assert_eq!(parse_sps(&sps).unwrap().max_num_ref_frames > 16, why.contains("max_num_ref"));
        assert_eq!(sps_dimensions(&sps).unwrap(), Dimensions { width: 1280, height: 720 });
        let built = AvcConfig::from_parameter_sets(std::slice::from_ref(&sps), std::slice::from_ref(&pps)).unwrap();
        let avcc = built.to_bytes();
        let parsed = AvcConfig::parse(&avcc).unwrap();
        assert_eq!(parsed.dimensions().unwrap(), Dimensions { width: 1280, height: 720 });
        assert!(parsed.parameter_sets().is_ok());
        assert!(H264PocState::from_avcc(&avcc).is_ok(), "{why}");
        let err = check_h264(&avcc, &[]).unwrap_err();
        assert!(err.contains(why) && err.starts_with("the record's"), "{err}");

        // The same set in-band, after a record that passes.
        let fine =
            AvcConfig::from_parameter_sets(&[Bytes::from(high_sps(1))], std::slice::from_ref(&good_pps)).unwrap();
        let unit = if why.contains("max_num_ref") { &sps } else { &pps };
        let sample = [&(unit.len() as u32).to_be_bytes()[..], unit].concat();
        let sets = fine.parameter_sets().unwrap().clone();
        assert!(check_h264_with(sets.clone(), 4, &[]).is_ok());
        let err = check_h264_with(sets, 4, &[&sample]).unwrap_err();
        assert!(err.contains("in-band") && err.contains(why), "{err}");
    }
}
