//! AAC frames stored back to back without lengths (an `mdat` whose index is lost) can be
//! told apart by their syntax: checked here against the true frames of real files.

mod common;

use livemux::codecs::aac::{self, raw_frame_can_end, raw_frame_start, RawFrameStart};
use livemux::codecs::CodecConfig;
use livemux::formats::mp4::file::read_moov;
use livemux::formats::mp4::moov::parse_movie;

/// An AAC track: channel configuration, sampling-frequency index, frames as (offset, size).
type AacTrack = (u8, usize, Vec<(usize, usize)>);

fn aac_tracks(data: &[u8]) -> Vec<AacTrack> {
    let mut cursor = std::io::Cursor::new(data);
    let (offset, header_len, moov) = read_moov(&mut cursor, data.len() as u64).unwrap().unwrap();
    let movie = parse_movie(&moov, offset, header_len).unwrap();
    movie
        .tracks
        .iter()
        .filter_map(|t| {
            let Ok(CodecConfig::Aac { asc, .. }) = &t.codec else { return None };
            let asc = aac::AudioSpecificConfig::parse(asc).unwrap();
            let sf_index = aac::SAMPLE_RATES.iter().position(|&r| r == asc.sample_rate).unwrap();
            let frames = t.table.samples().map(|s| s.unwrap()).map(|s| (s.offset as usize, s.size as usize)).collect();
            Some((asc.channel_configuration, sf_index, frames))
        })
        .collect()
}

#[test]
fn frame_boundaries_are_found_by_syntax() {
    let mut total_pairs = 0;
    for name in ["h264_aac_moov_end.mp4", "aac_only.mp4", "two_audio.mp4"] {
        let data = std::fs::read(common::generated_file(name)).unwrap();
        for (channels, sf, frames) in aac_tracks(&data) {
            let start = |p: usize| raw_frame_start(&data[p..], channels, sf);
            let mut starts = 0;
            for &(o, size) in &frames {
                starts += start(o).is_some() as usize;
                assert!(raw_frame_can_end(&data[..o + size]), "{name}: frame at {o} does not end like one");
            }
            assert!(starts * 100 >= frames.len() * 99, "{name}: {starts} of {} frame starts recognized", frames.len());

            // Two adjacent frames: how often is the true boundary the only candidate?
            let (mut pairs, mut found, mut unique) = (0, 0, 0);
            for w in frames.windows(2) {
                let ((o, size), (o2, size2)) = (w[0], w[1]);
                if o + size != o2 {
                    continue;
                }
                pairs += 1;
                let first: Option<RawFrameStart> = start(o);
                let candidates: Vec<usize> = (o + 8..o2 + size2 - 8)
                    .filter(|&p| raw_frame_can_end(&data[..p]))
                    .filter(|&p| match (first, start(p)) {
                        (Some(a), Some(b)) => {
                            a.may_precede(&b)
                                && match (a.global_gain, b.global_gain) {
                                    (Some(x), Some(y)) => x.abs_diff(y) <= 12,
                                    _ => true,
                                }
                        }
                        (None, Some(_)) => true,
                        _ => false,
                    })
                    .collect();
                found += candidates.contains(&o2) as usize;
                unique += (candidates == [o2]) as usize;
            }
            eprintln!("{name} ({channels} ch, sf index {sf}): of {pairs} boundaries, {found} among the candidates, {unique} the only one");
            total_pairs += pairs;
            // Syntax alone: the true boundary is (almost) always a candidate, and usually
            // the only one; sizes and timing settle the rest.
            assert!(found * 100 >= pairs * 97, "{name}: the true boundary was a candidate {found} of {pairs} times");
            assert!(unique * 100 >= pairs * 93, "{name}: only {unique} of {pairs} boundaries unique");
        }
    }
    assert!(total_pairs > 300, "the files hold adjacent audio frames to test ({total_pairs})");
}
