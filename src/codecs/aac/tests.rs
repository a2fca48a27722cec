//! Tests of the AAC parsers.

use super::super::h264::tests::{assert_truncations_fail, fails_invalid, fuzz, invalid_with, BitWriter};
use super::asc::WHAT_ASC;
use super::*;
use crate::codecs::CodecError;

/// FFmpeg's AAC encoder, 48 kHz stereo LC, with the backward compatible SBR extension
/// present but sbrPresentFlag 0.
const ASC_FFMPEG: &[u8] = &[0x11, 0x90, 0x56, 0xe5, 0x00];
/// The `esds` content (after version/flags) FFmpeg wrote around ASC_FFMPEG.
const ESDS_FFMPEG: &[u8] = &[
    0x03, 0x80, 0x80, 0x80, 0x25, 0x00, 0x01, 0x00, 0x04, 0x80, 0x80, 0x80, 0x17, 0x40, 0x15, 0x00, 0x00, 0x00, 0x00,
    0x01, 0xf4, 0x00, 0x00, 0x01, 0xd7, 0xdb, 0x05, 0x80, 0x80, 0x80, 0x05, 0x11, 0x90, 0x56, 0xe5, 0x00, 0x06, 0x80,
    0x80, 0x80, 0x01, 0x02,
];
/// The first ADTS header FFmpeg wrote for 44.1 kHz mono LC.
const ADTS_FFMPEG: &[u8] = &[0xff, 0xf1, 0x50, 0x40, 0x21, 0x3f, 0xfc];

fn asc(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
    let mut w = BitWriter::default();
    f(&mut w);
    w.finish()
}

#[test]
fn als_is_identified_with_its_own_rate() {
    // AOT 36 (escape 31 + 4), explicit rate 44116 (off, as some muxers write it),
    // channelConfiguration 0, 5 fill bits, ALSSpecificConfig: 44100 Hz, 2 channels.
    let v = asc(|w| {
        w.bits(5, 31);
        w.bits(6, 4);
        w.bits(4, 15);
        w.bits(24, 44116);
        w.bits(4, 0);
        w.bits(5, 0);
        for b in b"ALS\0" {
            w.bits(8, u64::from(*b));
        }
        w.bits(32, 44100);
        w.bits(32, 4096);
        w.bits(16, 1);
    });
    let c = AudioSpecificConfig::parse(&v).unwrap();
    assert_eq!((c.object_type, c.sample_rate, c.channels, c.is_aac()), (36, 44100, 2, false));
    // Explicit SBR over LC is AAC; over nothing known it is not.
    assert!(AudioSpecificConfig::parse(ASC_FFMPEG).unwrap().is_aac());
}

#[test]
fn common_configs() {
    let c = AudioSpecificConfig::parse(ASC_FFMPEG).unwrap();
    assert_eq!((c.object_type, c.sample_rate, c.channels, c.frame_length, c.sbr), (2, 48000, 2, 1024, false));
    let c = AudioSpecificConfig::parse(&[0x12, 0x08]).unwrap();
    assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44100, 1));
    // 960-sample frames, 7.1 (channelConfiguration 7).
    let c = AudioSpecificConfig::parse(&[0x11, 0xbc]).unwrap();
    assert_eq!((c.frame_length, c.channels), (960, 8));
    // channelConfiguration 0 (PCE follows) is accepted with 0 channels.
    let c = AudioSpecificConfig::parse(&[0x11, 0x80, 0x00]).unwrap();
    assert_eq!(c.channels, 0);
    // Explicit 24-bit rate.
    let v = asc(|w| {
        w.bits(5, 2);
        w.bits(4, 15);
        w.bits(24, 37800);
        w.bits(4, 2);
        w.bits(3, 0);
    });
    assert_eq!(AudioSpecificConfig::parse(&v).unwrap().sample_rate, 37800);
    // Escaped object type 42 (USAC) keeps the default frame length.
    let v = asc(|w| {
        w.bits(5, 31);
        w.bits(6, 10);
        w.bits(4, 3);
        w.bits(4, 2);
    });
    assert_eq!(AudioSpecificConfig::parse(&v).unwrap().object_type, 42);
    // AAC-LD with frameLengthFlag 1, AAC-ELD with 0.
    let v = asc(|w| {
        w.bits(5, 23);
        w.bits(4, 3);
        w.bits(4, 1);
        w.bits(3, 0b100);
        w.bits(2, 0); // epConfig
    });
    assert_eq!(AudioSpecificConfig::parse(&v).unwrap().frame_length, 480);
    let v = asc(|w| {
        w.bits(5, 31);
        w.bits(6, 7);
        w.bits(4, 3);
        w.bits(4, 1);
        w.bit(false);
    });
    let c = AudioSpecificConfig::parse(&v).unwrap();
    assert_eq!((c.object_type, c.frame_length), (39, 512));
}

#[test]
fn sbr_and_ps_signaling() {
    // Explicit HE-AAC: AOT 5, core 24 kHz stereo, extension 48 kHz, then AOT 2.
    let v = asc(|w| {
        w.bits(5, 5);
        w.bits(4, 6);
        w.bits(4, 2);
        w.bits(4, 3);
        w.bits(5, 2);
        w.bits(3, 0);
    });
    let c = AudioSpecificConfig::parse(&v).unwrap();
    assert_eq!((c.object_type, c.sbr, c.ps, c.sample_rate, c.core_sample_rate), (2, true, false, 48000, 24000));
    assert_eq!((c.channels, c.frame_length), (2, 1024));
    // Explicit HE-AACv2: AOT 29, mono core, parametric stereo.
    let v = asc(|w| {
        w.bits(5, 29);
        w.bits(4, 6);
        w.bits(4, 1);
        w.bits(4, 3);
        w.bits(5, 2);
        w.bits(3, 0);
    });
    let c = AudioSpecificConfig::parse(&v).unwrap();
    assert_eq!((c.sbr, c.ps, c.channels, c.sample_rate), (true, true, 2, 48000));
    // Backward compatible: LC 22.05 kHz mono + 0x2b7 SBR 44.1 kHz + 0x548 PS.
    let v = asc(|w| {
        w.bits(5, 2);
        w.bits(4, 7);
        w.bits(4, 1);
        w.bits(3, 0);
        w.bits(11, 0x2b7);
        w.bits(5, 5);
        w.bit(true);
        w.bits(4, 4);
        w.bits(11, 0x548);
        w.bit(true);
    });
    let c = AudioSpecificConfig::parse(&v).unwrap();
    assert_eq!((c.object_type, c.sbr, c.ps, c.sample_rate, c.channels), (2, true, true, 44100, 2));
    // A malformed tail is ignored.
    let c = AudioSpecificConfig::parse(&[0x12, 0x08, 0xff, 0xff]).unwrap();
    assert!(!c.sbr);
}

#[test]
fn asc_rejections() {
    let err = |v: &[u8]| AudioSpecificConfig::parse(v).unwrap_err();
    assert!(invalid_with(&err(&[0, 0]), "object type 0"));
    assert!(invalid_with(&err(&[0x16, 0x88]), "samplingFrequencyIndex 13"));
    assert!(invalid_with(&err(&[0x11, 0xc0]), "channelConfiguration 8"));
    assert!(invalid_with(&err(&[0x17, 0x80, 0, 0, 0x10]), "is 0"));
    assert_eq!(err(&[0x11]), CodecError::Truncated { what: WHAT_ASC, len: 1, need: 2 });
}

#[test]
fn asc_truncations_fail() {
    // Everything up to the GASpecificConfig flags is required; the extension is not.
    assert_truncations_fail(&ASC_FFMPEG[..2], AudioSpecificConfig::parse);
    for n in 2..ASC_FFMPEG.len() {
        assert!(AudioSpecificConfig::parse(&ASC_FFMPEG[..n]).is_ok());
    }
}

#[test]
fn asc_fuzz() {
    fuzz(ASC_FFMPEG, AudioSpecificConfig::parse);
    fuzz(&[0x2b, 0x92, 0x08, 0x00], AudioSpecificConfig::parse);
}

#[test]
fn esds_parsing() {
    assert_eq!(esds_object_type_indication(ESDS_FFMPEG).unwrap(), 0x40);
    let r = esds_decoder_specific_info(ESDS_FFMPEG).unwrap();
    assert_eq!(&ESDS_FFMPEG[r], ASC_FFMPEG);
    // Short sizes and the optional ES_Descriptor fields (dependsOn, URL, OCR), with an
    // unrelated descriptor before the DecoderConfigDescriptor.
    let esds = [
        0x03, 0x1f, 0x00, 0x02, 0xe0, 0x00, 0x01, 0x03, b'a', b'b', b'c', 0x00, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x0f,
        0x67, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x00,
    ];
    assert_eq!(esds_object_type_indication(&esds).unwrap(), 0x67);
    assert_eq!(esds_decoder_specific_info(&esds).unwrap(), 33..33);
    // MP3 is reported as unsupported, with its value.
    let mut mp3 = ESDS_FFMPEG.to_vec();
    mp3[13] = 0x6b;
    assert_eq!(esds_object_type_indication(&mp3).unwrap(), 0x6b);
    let unsupported = esds_decoder_specific_info(&mp3).unwrap_err();
    assert!(unsupported.to_string().contains("unsupported objectTypeIndication 0x6b"));
    // Wrong first tag, missing DecoderSpecificInfo, a 5-byte size.
    assert!(matches!(esds_decoder_specific_info(&[0x04, 0x00]), Err(CodecError::Invalid { .. })));
    let mut no_dsi = ESDS_FFMPEG.to_vec();
    no_dsi[26] = 0x07;
    assert!(fails_invalid(&esds_decoder_specific_info(&no_dsi), "tag 5"));
    assert!(matches!(
        esds_decoder_specific_info(&[0x03, 0x80, 0x80, 0x80, 0x80, 0x01]),
        Err(CodecError::Invalid { .. })
    ));
    // A child running past its parent.
    let mut long_child = ESDS_FFMPEG.to_vec();
    long_child[12] = 0x30;
    assert!(matches!(esds_decoder_specific_info(&long_child), Err(CodecError::Truncated { .. })));
    // A zeroed payload.
    assert!(esds_decoder_specific_info(&[0; 42]).is_err());
}

#[test]
fn esds_build_matches_ffmpeg() {
    assert_eq!(build_esds_payload(ASC_FFMPEG, 1, 128000, 120795, 0), ESDS_FFMPEG);
    let built = build_esds_payload(&[0x12, 0x08], 7, 1, 2, 0x1234_5678);
    let r = esds_decoder_specific_info(&built).unwrap();
    assert_eq!(&built[r], &[0x12, 0x08]);
    assert_eq!(&built[15..18], &[0xff, 0xff, 0xff]);
}

#[test]
fn esds_truncations_fail() {
    assert_truncations_fail(ESDS_FFMPEG, esds_decoder_specific_info);
    assert_truncations_fail(ESDS_FFMPEG, esds_object_type_indication);
}

#[test]
fn esds_fuzz() {
    fuzz(ESDS_FFMPEG, esds_decoder_specific_info);
    fuzz(ESDS_FFMPEG, |d| {
        if let Ok(r) = esds_decoder_specific_info(d) {
            assert!(r.end <= d.len());
        }
    });
}

#[test]
fn adts_headers() {
    let h = AdtsHeader::parse(ADTS_FFMPEG).unwrap().unwrap();
    assert_eq!((h.object_type, h.sample_rate, h.channels, h.header_len), (2, 44100, 1, 7));
    assert_eq!((h.frame_len, h.raw_blocks), (0x21 << 3 | 1, 1));
    assert_eq!(&h.to_audio_specific_config()[..], &[0x12, 0x08]);
    // With CRC: needs 9 bytes.
    let mut crc = ADTS_FFMPEG.to_vec();
    crc[1] = 0xf0;
    assert_eq!(AdtsHeader::parse(&crc).unwrap(), None);
    crc.extend([0xab, 0xcd]);
    assert_eq!(AdtsHeader::parse(&crc).unwrap().unwrap().header_len, 9);
    // Partial headers are "need more" until something is visibly wrong.
    for n in 0..7 {
        assert_eq!(AdtsHeader::parse(&ADTS_FFMPEG[..n]).unwrap(), None);
    }
    assert!(AdtsHeader::parse(&[0xfe]).is_err());
    assert!(AdtsHeader::parse(&[0xff, 0xe1]).is_err());
    assert!(AdtsHeader::parse(&[0xff, 0xf3]).is_err()); // layer 1
    let mut bad_rate = ADTS_FFMPEG.to_vec();
    bad_rate[2] = 0x74; // index 13
    assert!(AdtsHeader::parse(&bad_rate).is_err());
    let mut short = ADTS_FFMPEG.to_vec();
    short[3] = 0x40;
    short[4] = 0;
    short[5] = 0xc0; // frame length 6
    assert!(AdtsHeader::parse(&short).is_err());
    // 48 kHz 5.1, and a rate without an index.
    let h = AdtsHeader { object_type: 2, sample_rate: 48000, channels: 6, header_len: 7, frame_len: 7, raw_blocks: 1 };
    assert_eq!(&h.to_audio_specific_config()[..], &[0x11, 0xb0]);
    let h = AdtsHeader { sample_rate: 37800, ..h };
    let asc = h.to_audio_specific_config();
    let c = AudioSpecificConfig::parse(&asc).unwrap();
    assert_eq!((c.sample_rate, c.channels), (37800, 6));
}

#[test]
fn adts_fuzz() {
    fuzz(ADTS_FFMPEG, AdtsHeader::parse);
    fuzz(ADTS_FFMPEG, |d| AdtsHeader::parse(d).map(|h| h.map(|h| h.to_audio_specific_config())));
}

/// Bytes from a string of '0'/'1', zero-padded to a byte boundary.
fn from_bits(bits: &str) -> Vec<u8> {
    let padded = bits.to_string() + &"0".repeat((8 - bits.len() % 8) % 8);
    padded.as_bytes().chunks(8).map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()).collect()
}

#[test]
fn raw_frame_start_reads_sce_and_skips_fill() {
    // SCE tag 0, gain 150, ics: reserved 0, ONLY_LONG, shape 0, max_sfb 40, no prediction.
    // Then one section of codebook 1 over all 40 bands (length 31 + 9, escaped).
    let sce = "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001" + "11111" + "01001";
    let bytes = from_bits(&sce);
    let start = raw_frame_start(&bytes, 1, 3).unwrap();
    assert_eq!(start, RawFrameStart { global_gain: Some(150), window_sequence: 0 });
    // max_sfb over the 49 bands of 48 kHz is not a frame start.
    let mut bad = bytes.clone();
    bad[2] |= 0b0000_1111;
    assert_eq!(raw_frame_start(&bad, 1, 3), None);
    // A fill element with 1 byte first: id 110, count 0001, one byte, then the SCE.
    let bytes = from_bits(&("110".to_string() + "0001" + "11111111" + &sce));
    assert_eq!(raw_frame_start(&bytes, 1, 3).map(|s| s.global_gain), Some(Some(150)));
    // Mono data is not a stereo frame start.
    assert_eq!(raw_frame_start(&bytes, 2, 3), None);
}

/// Values that overflowed: a fill element whose escaped count is 0 (cnt = 15 + 0 - 1,
/// computed as `0 - 1` first), long runs of escaped section lengths, and descriptor
/// sizes near the top of the expandable encoding.
#[test]
fn crafted_values_that_overflowed_are_handled() {
    let sce = "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001" + "11111" + "01001";
    // FIL with cnt 15 and esc_count 0: 14 bytes of fill, then the SCE.
    let fill = "110".to_string() + "1111" + "00000000" + &"10101010".repeat(14);
    let bytes = from_bits(&(fill + &sce));
    assert_eq!(raw_frame_start(&bytes, 1, 3).map(|s| s.global_gain), Some(Some(150)));
    // The same with esc_count 0 and too few bytes after it: not a frame start.
    assert_eq!(raw_frame_start(&from_bits("11011110000000010101010"), 1, 3), None);
    // A section length escaped forever (all ones) ends without overflow.
    let escaped = "000".to_string() + "0000" + "10010110" + "0" + "00" + "0" + "101000" + "0" + "0001";
    let mut v = from_bits(&escaped);
    v.extend(std::iter::repeat_n(0xff, 4096));
    assert_eq!(raw_frame_start(&v, 1, 3), None);
    // Every byte pattern after a FIL escape, and random bytes at every channel config.
    for esc in 0..=255u8 {
        let mut v = vec![0b1101_1110 | (esc >> 7), esc << 1];
        v.extend([0u8; 8]);
        for cc in 0..=3 {
            let _ = raw_frame_start(&v, cc, 3);
        }
    }
    // Descriptor sizes of 2^28 - 1 that run past the record.
    let esds = [0x03, 0xff, 0xff, 0xff, 0x7f, 0x00];
    assert!(esds_decoder_specific_info(&esds).is_err());
    let esds = [0x03, 0x80, 0x80, 0x80, 0x05, 0x00, 0x01, 0x40, 0xff, 0x00];
    assert!(esds_decoder_specific_info(&esds).is_err());
}

proptest::proptest! {
    #[test]
    fn aac_parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..96), cc in 0u8..4, sf in 0usize..16) {
        let _ = AudioSpecificConfig::parse(&data);
        let _ = esds_decoder_specific_info(&data);
        let _ = esds_object_type_indication(&data);
        let _ = AdtsHeader::parse(&data).map(|h| h.map(|h| h.to_audio_specific_config()));
        let _ = raw_frame_start(&data, cc, sf);
        let _ = raw_frame_can_end(&data);
    }
}

#[test]
fn raw_frame_end_is_id_end_then_padding() {
    assert!(raw_frame_can_end(&[0x12, 0b1110_0000]));
    assert!(raw_frame_can_end(&[0b0000_0011, 0b1000_0000]));
    assert!(!raw_frame_can_end(&[0b0000_0001, 0b1000_0000]));
    assert!(raw_frame_can_end(&[0x00, 0b0000_0111]));
    assert!(!raw_frame_can_end(&[0x00, 0b0000_0110]));
    assert!(!raw_frame_can_end(&[0x00, 0x00]));
    assert!(!raw_frame_can_end(&[0x07]));
}

#[test]
fn window_sequences_follow_the_transition_rules() {
    let w = |window_sequence| RawFrameStart { global_gain: None, window_sequence };
    assert!(w(0).may_precede(&w(1)) && w(1).may_precede(&w(2)) && w(2).may_precede(&w(3)) && w(3).may_precede(&w(0)));
    assert!(!w(0).may_precede(&w(2)) && !w(2).may_precede(&w(0)));
}
