//! The two playlists livemux writes, as data: the EVENT media playlist (`stream.m3u8`) and
//! the multivariant playlist (`index.m3u8`) that names it with its `CODECS`.
//!
//! ```text
//!  index.m3u8                                   stream.m3u8
//!  #EXTM3U                                      #EXTM3U
//!  #EXT-X-VERSION:7                             #EXT-X-VERSION:7
//!  #EXT-X-STREAM-INF:BANDWIDTH=..,              #EXT-X-PLAYLIST-TYPE:EVENT
//!    CODECS="avc1.64001f,Opus",RESOLUTION=..    #EXT-X-TARGETDURATION:4
//!  stream.m3u8                                  #EXT-X-MEDIA-SEQUENCE:0
//!                                               #EXT-X-MAP:URI="init-0.mp4"
//!                                               #EXTINF:2.002,
//!                                               seg-000000.m4s
//!                                               ...            (a restart on the same directory:)
//!                                               #EXT-X-DISCONTINUITY
//!                                               #EXT-X-MAP:URI="init-1.mp4"
//!                                               #EXTINF:2.000,
//!                                               seg-000007.m4s
//!                                               #EXT-X-ENDLIST  (at a clean stop)
//! ```
//!
//! [`MediaPlaylist::parse`] reads back only what [`MediaPlaylist::render`] writes (the
//! playlist of an earlier run in the same directory, to continue it); anything else is an
//! error naming the line.

use std::fmt::Write;

/// Most segments a playlist read back may name (a day of 1 s segments, four times over).
pub const MAX_SEGMENTS: usize = 400_000;

/// One media segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// File name, in the playlist's directory.
    pub uri: String,
    /// Duration, ms.
    pub duration_ms: u64,
    /// The init segment (`EXT-X-MAP`) it needs, when it differs from the previous
    /// segment's (the first segment, and the first after a restart).
    pub map: Option<String>,
    /// A restart (another init segment, timestamps from 0 again) comes before it.
    pub discontinuity: bool,
}

/// An `EXT-X-PLAYLIST-TYPE:EVENT` media playlist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`, s: at least every segment's duration, rounded.
    pub target_duration_s: u64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// `EXT-X-ENDLIST`: the recording is over.
    pub ended: bool,
}

impl MediaPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        let target = self.segments.iter().map(|s| rounded_s(s.duration_ms)).fold(self.target_duration_s, u64::max);
        let mut s = String::with_capacity(128 + self.segments.len() * 40);
        s.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:EVENT\n");
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", target.max(1));
        s.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
        for seg in &self.segments {
            if seg.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(map) = &seg.map {
                let _ = writeln!(s, "#EXT-X-MAP:URI=\"{map}\"");
            }
            let _ = writeln!(s, "#EXTINF:{}.{:03},\n{}", seg.duration_ms / 1000, seg.duration_ms % 1000, seg.uri);
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }

    /// Reads a playlist [`render`](Self::render) wrote; `Err` names the first line it does
    /// not understand.
    pub fn parse(text: &str) -> Result<MediaPlaylist, String> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        match lines.next() {
            Some((_, "#EXTM3U")) => {}
            _ => return Err("line 1: not a playlist (no #EXTM3U)".into()),
        }
        let mut p = MediaPlaylist::default();
        let (mut map, mut discontinuity, mut duration_ms) = (None, false, None);
        for (n, line) in lines {
            let bad = |why: &str| format!("line {n}: {why}: {line:?}");
            if line.is_empty() {
                continue;
            }
            if p.ended {
                return Err(bad("after #EXT-X-ENDLIST"));
            }
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration_s = v.parse().map_err(|_| bad("bad target duration"))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=") {
                let uri = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(|| bad("bad map"))?;
                map = Some(checked_name(uri).ok_or_else(|| bad("not a file name of this directory"))?.to_string());
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let v = v.strip_suffix(',').ok_or_else(|| bad("bad duration"))?;
                duration_ms = Some(parse_ms(v).ok_or_else(|| bad("bad duration"))?);
            } else if line == "#EXT-X-DISCONTINUITY" {
                discontinuity = true;
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if matches!(line, "#EXT-X-VERSION:7" | "#EXT-X-PLAYLIST-TYPE:EVENT" | "#EXT-X-MEDIA-SEQUENCE:0") {
            } else if line.starts_with('#') {
                return Err(bad("a tag livemux does not write"));
            } else {
                let uri = checked_name(line).ok_or_else(|| bad("not a file name of this directory"))?;
                let duration_ms = duration_ms.take().ok_or_else(|| bad("a segment without #EXTINF"))?;
                if p.segments.len() >= MAX_SEGMENTS {
                    return Err(bad(&format!("more than {MAX_SEGMENTS} segments")));
                }
                p.segments.push(Segment {
                    uri: uri.to_string(),
                    duration_ms,
                    map: map.take(),
                    discontinuity: std::mem::take(&mut discontinuity),
                });
            }
        }
        if p.segments.first().is_some_and(|s| s.map.is_none()) {
            return Err("the first segment has no #EXT-X-MAP".into());
        }
        Ok(p)
    }
}

/// `name` if it is a plain file name (no directory part, not hidden).
fn checked_name(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(name)
}

/// `"2.002"` → 2002 (ms; at most 3 decimals).
fn parse_ms(v: &str) -> Option<u64> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ms = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse::<u64>().ok()? };
    whole.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(frac_ms)
}

/// A duration in whole seconds as `EXT-X-TARGETDURATION` counts it (rounded to nearest).
fn rounded_s(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

/// The one variant of the multivariant playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The media playlist's file name.
    pub uri: String,
    /// Peak bit rate of a segment, bit/s.
    pub bandwidth: u64,
    /// Mean bit rate, bit/s.
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings of every track.
    pub codecs: Vec<String>,
    /// Picture size of the video, if any.
    pub resolution: Option<(u32, u32)>,
}

impl Variant {
    /// `index.m3u8`: the multivariant playlist naming this one variant.
    pub fn render(&self) -> String {
        let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = write!(s, "#EXT-X-STREAM-INF:BANDWIDTH={}", self.bandwidth.max(1));
        if let Some(avg) = self.average_bandwidth {
            let _ = write!(s, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        let _ = write!(s, ",CODECS=\"{}\"", self.codecs.join(","));
        if let Some((w, h)) = self.resolution {
            let _ = write!(s, ",RESOLUTION={w}x{h}");
        }
        let _ = writeln!(s, "\n{}", self.uri);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MediaPlaylist {
        let seg = |n: u32, ms, map: Option<&str>, d| Segment {
            uri: format!("seg-{n:06}.m4s"),
            duration_ms: ms,
            map: map.map(String::from),
            discontinuity: d,
        };
        MediaPlaylist {
            target_duration_s: 4,
            segments: vec![
                seg(0, 2002, Some("init-0.mp4"), false),
                seg(1, 1999, None, false),
                seg(2, 40, Some("init-1.mp4"), true),
            ],
            ended: true,
        }
    }

    #[test]
    fn renders_and_reads_back() {
        let p = sample();
        let text = p.render();
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:0.040,\nseg-000002.m4s\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(MediaPlaylist::parse(&text).unwrap(), p);
    }

    #[test]
    fn target_duration_covers_every_segment() {
        let mut p = sample();
        p.segments[1].duration_ms = 6_600;
        assert!(p.render().contains("#EXT-X-TARGETDURATION:7\n"));
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        for bad in [
            "",
            "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\n../etc/passwd\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"../init.mp4\"\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\"\nseg.m4s\n",
            "#EXTM3U\n#EXTINF:1.0,\nseg.m4s\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:1.0001,\nseg.m4s\n",
            "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:99999999999999999999,\nseg.m4s\n",
            "#EXTM3U\n#EXT-X-ENDLIST\n#EXT-X-MAP:URI=\"i.mp4\"\n",
        ] {
            assert!(MediaPlaylist::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_ms("2.5"), Some(2500));
        assert_eq!(parse_ms("3"), Some(3000));
    }

    #[test]
    fn variant() {
        let v = Variant {
            uri: "stream.m3u8".into(),
            bandwidth: 900_000,
            average_bandwidth: None,
            codecs: vec!["avc1.64001f".into(), "Opus".into()],
            resolution: Some((1280, 720)),
        };
        assert!(v.render().contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001f,Opus\",RESOLUTION=1280x720\nstream.m3u8\n"
        ));
    }
}
