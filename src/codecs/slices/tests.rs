//! Tests of the slice header checks on synthetic streams.

use super::super::h264::tests::{escape, BitWriter};
use super::*;
use crate::codecs::h264;

/// Fields of a synthetic Main-like stream that a wrong record changes.
#[derive(Clone, Copy)]
struct Params {
    log2_max_frame_num_minus4: u32,
    poc_type: u32,
    log2_max_poc_lsb_minus4: u32,
    width_mbs: u32,
    cabac: bool,
    pic_init_qp_minus26: i32,
    num_ref_idx_default: u32,
}

const GOOD: Params = Params {
    log2_max_frame_num_minus4: 0,
    poc_type: 0,
    log2_max_poc_lsb_minus4: 2,
    width_mbs: 20,
    cabac: true,
    pic_init_qp_minus26: 0,
    num_ref_idx_default: 1,
};

fn avcc(p: Params) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(24, 0x4d_00_1e); // Main, level 3.0
    w.ue(0);
    w.ue(p.log2_max_frame_num_minus4);
    w.ue(p.poc_type);
    if p.poc_type == 0 {
        w.ue(p.log2_max_poc_lsb_minus4);
    }
    w.ue(2); // max_num_ref_frames
    w.bit(false);
    w.ue(p.width_mbs - 1);
    w.ue(14);
    w.bits(4, 0b1100);
    let sps = [&[0x67][..], &escape(&w.finish_rbsp())].concat();
    let mut w = BitWriter::default();
    w.ue(0);
    w.ue(0);
    w.bit(p.cabac);
    w.bit(false);
    w.ue(0);
    w.ue(p.num_ref_idx_default - 1);
    w.ue(0);
    w.bits(3, 0);
    w.se(p.pic_init_qp_minus26);
    w.se(0);
    w.se(0);
    w.bits(3, 0b100); // deblocking_filter_control_present
    let pps = [&[0x68][..], &escape(&w.finish_rbsp())].concat();
    h264::AvcConfig::from_parameter_sets(&[sps.into()], &[pps.into()]).unwrap().to_bytes().to_vec()
}

/// One slice written with `p`: `I` an IDR, `P` a reference P picture, `b` a
/// non-reference P picture; `first_mb` where it starts.
fn slice(p: Params, kind: char, frame_num: u32, poc_lsb: u32, first_mb: u32, qp_delta: i32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(first_mb);
    w.ue(if kind == 'I' { 7 } else { 5 });
    w.ue(0);
    w.bits(p.log2_max_frame_num_minus4 + 4, u64::from(frame_num));
    if kind == 'I' {
        w.ue(0); // idr_pic_id
    }
    if p.poc_type == 0 {
        w.bits(p.log2_max_poc_lsb_minus4 + 4, u64::from(poc_lsb));
    }
    if kind != 'I' {
        w.bit(false); // num_ref_idx_active_override_flag
        w.bit(false); // ref_pic_list_modification_flag_l0
    }
    if kind != 'b' {
        w.bits(if kind == 'I' { 2 } else { 1 }, 0); // dec_ref_pic_marking
    }
    if p.cabac && kind != 'I' {
        w.ue(0); // cabac_init_idc
    }
    w.se(qp_delta);
    w.ue(0); // disable_deblocking_filter_idc
    w.se(0);
    w.se(0);
    if p.cabac {
        while w.bit_count() % 8 != 0 {
            w.bit(true);
        }
    }
    w.bits(24, 0x5a_a5_5a);
    let header = match kind {
        'I' => 0x65,
        'P' => 0x41,
        _ => 0x01,
    };
    [&[header][..], &escape(&w.finish())].concat()
}

fn sample(units: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in units {
        out.extend_from_slice(&(u.len() as u32).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

fn stream(p: Params) -> Vec<Vec<u8>> {
    vec![
        sample(&[slice(p, 'I', 0, 0, 0, 2), slice(p, 'I', 0, 0, 150, 2)]),
        sample(&[slice(p, 'P', 1, 4, 0, -3)]),
        sample(&[slice(p, 'b', 2, 2, 0, 5)]),
        sample(&[slice(p, 'P', 2, 8, 0, 0)]),
    ]
}

fn check(p: Params, samples: &[Vec<u8>]) -> Result<SliceCheck, String> {
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    check_h264(&avcc(p), &refs)
}

#[test]
fn h264_slices_parse_with_their_own_record() {
    let s = stream(GOOD);
    assert_eq!(check(GOOD, &s), Ok(SliceCheck { slices: 5, inband_parameter_sets: false }));
    let cavlc = Params { cabac: false, ..GOOD };
    assert!(check(cavlc, &stream(cavlc)).is_ok());
    let poc2 = Params { poc_type: 2, ..GOOD };
    assert!(check(poc2, &stream(poc2)).is_ok());
}

#[test]
fn h264_wrong_records_that_parse_are_caught() {
    let s = stream(GOOD);
    for (what, wrong) in [
        ("log2_max_frame_num", Params { log2_max_frame_num_minus4: 2, ..GOOD }),
        ("poc type", Params { poc_type: 2, ..GOOD }),
        ("poc lsb bits", Params { log2_max_poc_lsb_minus4: 6, ..GOOD }),
        ("entropy coder", Params { cabac: false, ..GOOD }),
        ("picture size", Params { width_mbs: 5, ..GOOD }),
        ("QP", Params { pic_init_qp_minus26: 24, ..GOOD }),
    ] {
        assert!(check(wrong, &s).is_err(), "{what}: {:?}", check(wrong, &s));
    }
}

#[test]
fn h264_semantic_checks() {
    let fail = |samples: Vec<Vec<u8>>, needle: &str| {
        let e = check(GOOD, &samples).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    };
    fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 7, 0)])], "macroblock 7, not 0");
    fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 40)])], "slice QP 66");
    fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 0), slice(GOOD, 'I', 0, 0, 300, 0)])], "past the picture");
    fail(vec![sample(&[slice(GOOD, 'I', 0, 0, 0, 0)]), sample(&[slice(GOOD, 'P', 5, 2, 0, 0)])], "frame_num 5 follows");
    let mut bad_pps = slice(GOOD, 'I', 0, 0, 0, 0);
    bad_pps[1] = 0b1010_0000; // first_mb 0, slice_type ue "010" = 1 (B in an IDR)
    fail(vec![sample(&[bad_pps])], "IDR slice has slice_type");
    // In-band parameter sets replace the record's.
    let rec = h264::AvcConfig::parse(&avcc(GOOD)).unwrap();
    let with_sets = [sample(&[rec.sps[0].to_vec(), rec.pps[0].to_vec(), slice(GOOD, 'I', 0, 0, 0, 0)])];
    let refs: Vec<&[u8]> = with_sets.iter().map(Vec::as_slice).collect();
    let wrong = avcc(Params { poc_type: 2, ..GOOD });
    assert_eq!(check_h264(&wrong, &refs), Ok(SliceCheck { slices: 1, inband_parameter_sets: true }));
}

proptest::proptest! {
    #[test]
    fn random_samples_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = check_h264(&avcc(GOOD), &[&data]);
        let rec = avcc(GOOD);
        let mut mixed = rec.clone();
        let n = mixed.len();
        for (i, b) in data.iter().enumerate().take(n) {
            mixed[(i * 7) % n] ^= b;
        }
        let _ = check_h264(&mixed, &[&stream(GOOD)[1]]);
        let _ = check_hevc(&data, &[&data]);
    }
}
