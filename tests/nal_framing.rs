//! Access units of H.264 and HEVC found without an index, checked against the true
//! samples (sizes and sync flags from the moov) of real files.

mod common;

use livemux::codecs::access_unit::{access_unit, may_start_access_unit, AuParse, AuRules, NalSyntax};
use livemux::codecs::{h264, hevc, CodecConfig};
use livemux::formats::mp4::file::read_moov;
use livemux::formats::mp4::moov::parse_movie;

#[test]
fn every_picture_is_found_whole_with_its_sync_flag() {
    for name in ["h264_aac_moov_end.mp4", "hevc_aac_moov_end.mov", "two_audio.mp4"] {
        let data = std::fs::read(common::generated_file(name)).unwrap();
        let mut cursor = std::io::Cursor::new(&data[..]);
        let (offset, header_len, moov) = read_moov(&mut cursor, data.len() as u64).unwrap().unwrap();
        let movie = parse_movie(&moov, offset, header_len).unwrap();
        let video = movie.tracks.iter().find(|t| t.kind == livemux::TrackKind::Video).unwrap();
        let (syntax, length_size) = match video.codec.as_ref().unwrap() {
            CodecConfig::H264 { avcc, .. } => (NalSyntax::H264, h264::AvcConfig::parse(avcc).unwrap().nal_length_size),
            CodecConfig::Hevc { hvcc, .. } => (NalSyntax::Hevc, hevc::HvcConfig::parse(hvcc).unwrap().nal_length_size),
            other => panic!("{name}: {}", other.name()),
        };
        let rules = AuRules { syntax, length_size, max_nal_size: data.len() };
        let mut checked = 0;
        for s in video.table.samples().map(Result::unwrap) {
            let at = s.offset as usize;
            assert!(may_start_access_unit(&data[at..], &rules), "{name}: sample {} not recognized as a start", s.index);
            let got = access_unit(&data[at..], &rules, false);
            assert_eq!(got, AuParse::Unit { len: s.size as usize, keyframe: s.sync }, "{name}: sample {}", s.index);
            // Cut inside the picture: never a whole unit.
            let cut = &data[at..at + s.size as usize - 1];
            assert_ne!(access_unit(cut, &rules, true), AuParse::Unit { len: s.size as usize, keyframe: s.sync });
            checked += 1;
        }
        assert!(checked >= 90, "{name}: {checked} pictures");
    }
}
