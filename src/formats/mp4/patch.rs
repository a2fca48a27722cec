//! The one `moov` patcher: an existing `moov` with new sample tables, durations and edit
//! lists, every box it does not describe copied as it was.
//!
//! Used by `livemux finalize` and `--to mp4` (through
//! [`FragmentIndex::final_moov`](super::finalize::FragmentIndex::final_moov)) and by
//! `append` ([`Merge::build_moov`](super::append::merge::Merge::build_moov)), so that the
//! three agree on what survives a rewrite. What it does, box by box:
//!
//! - `moov`: `mvhd` rewritten (timescale and duration; written anew when missing), `mvex`
//!   dropped (the result is a regular file), `trak` patched, anything else copied.
//! - `trak`: `tkhd` rewritten (duration), `edts` replaced by the new edit list or dropped
//!   when there is none (a new list goes right after `tkhd` when the track had no
//!   `edts`), `mdia` patched, anything else (`tref`, `udta`, `meta`...) copied.
//! - `mdia`: `mdhd` rewritten (duration, optionally timescale), `minf` patched down to
//!   `stbl`, anything else (`hdlr`, `elng`...) copied.
//! - `stbl`: `stsd` copied, or rebuilt from new sample entries (written first when the input
//!   `stbl` has none); every box of
//!   [`PER_SAMPLE`] dropped; `sgpd` copied unless the caller writes the track's sample
//!   groups itself ([`TrackPatch::sample_groups`]); anything else copied in order; then the
//!   new tables ([`TableBuilder::write`]) and the caller's extra boxes.
//!
//! Written by hand: it rests on the crate's own box reader and writers, and no crate
//! patches a `moov` while copying the boxes it does not know.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{Child, FourCc, Mp4Error, Reader};
use super::init::write_mvhd;
use super::tables::TableBuilder;
use super::write::{close, open, open_full, rewrite_timed, write_edts};
use crate::model::Edit;

/// Boxes of `stbl` that describe samples one by one (or per chunk, or per fragment):
/// they are only true of the old sample list, so a patched `stbl` drops them all and the
/// caller writes what it knows anew.
///
/// - `stts ctts cslg stss stps sdtp stsz stz2 stsc stco co64`: timing, sync, sizes and
///   chunks; [`TableBuilder`] writes the new ones (`sdtp` when it says more than `stss`).
/// - `sbgp`: sample-to-group runs. `append` writes joined runs; finalize has none to give.
/// - `subs`: sub-sample sizes, `padb`: padding bits: per sample, not rebuilt.
/// - `saiz`/`saio`: sample auxiliary information (CENC `senc` sizes and offsets): per
///   sample and pointing at file offsets. Encrypted tracks are refused on input
///   ([`super::moov`]), so they are only ever stale leftovers here.
///
/// `sgpd` (group descriptions) is not in the list: it describes groups, not samples, and is
/// kept unless the caller writes its own (see [`TrackPatch::sample_groups`]).
pub const PER_SAMPLE: [&[u8; 4]; 16] = [
    b"stts", b"ctts", b"cslg", b"stss", b"stps", b"sdtp", b"stsz", b"stz2", b"stsc", b"stco", b"co64", b"sbgp",
    b"subs", b"saiz", b"saio", b"padb",
];

/// What changes in the `moov` as a whole.
#[derive(Clone, Debug)]
pub struct MoviePatch<'a> {
    /// The movie timescale `mvhd` gets.
    pub timescale: u32,
    /// The movie duration, in `timescale` units.
    pub duration: u64,
    /// `next_track_ID` of an `mvhd` written for a `moov` that has none.
    pub next_track_id: u32,
    /// One per `trak`, in order.
    pub tracks: &'a [TrackPatch<'a>],
}

/// What changes in one `trak`.
#[derive(Clone, Debug)]
pub struct TrackPatch<'a> {
    /// `tkhd` duration, in movie units.
    pub track_duration: u64,
    /// `mdhd` timescale (`None`: kept).
    pub media_timescale: Option<u32>,
    /// `mdhd` duration, in media units.
    pub media_duration: u64,
    /// The edit list (`None`: no `edts`).
    pub edits: Option<&'a [Edit]>,
    /// New sample entries for `stsd` (`None`: `stsd` copied).
    pub entries: Option<&'a [Bytes]>,
    /// The new sample tables.
    pub tables: &'a TableBuilder,
    /// Boxes written after the tables (`append`: `sdtp`, `sgpd` and `sbgp`).
    pub extra: &'a [u8],
    /// The caller writes the track's sample groups (`sgpd` with `sbgp`) in `extra`: the old
    /// `sgpd` boxes are dropped too.
    pub sample_groups: bool,
}

impl TrackPatch<'_> {
    fn len_hint(&self) -> usize {
        self.tables.encoded_len() + self.extra.len() + self.entries.map_or(0, |e| e.iter().map(Bytes::len).sum())
    }
}

/// Writes `moov` (the whole box, at `offset`, with a header of `header_len` bytes) patched.
pub fn patch_moov(moov: &[u8], offset: u64, header_len: u32, patch: &MoviePatch<'_>) -> Result<Bytes, Mp4Error> {
    let hl = header_len as usize;
    let body = moov.get(hl..).ok_or_else(|| Mp4Error::invalid("'moov' box", offset, "shorter than its header"))?;
    let root = Reader::new(body, offset + hl as u64, FourCc::new(b"moov"));
    let tables_len: usize = patch.tracks.iter().map(TrackPatch::len_hint).sum();
    let mut out = BytesMut::with_capacity(moov.len() + tables_len + 64 * patch.tracks.len());
    let start = open(&mut out, b"moov");
    let mut has_mvhd = false;
    for child in root.children() {
        has_mvhd |= child?.fourcc.0 == *b"mvhd";
    }
    // A `moov` without `mvhd` gets one: readers need it.
    if !has_mvhd {
        write_mvhd(&mut out, patch.timescale, patch.duration, patch.next_track_id);
    }
    let mut traks = patch.tracks.iter();
    for child in root.children() {
        let child = child?;
        match &child.fourcc.0 {
            b"mvhd" => rewrite_timed(&mut out, &child, Some(patch.timescale), patch.duration)?,
            b"mvex" => {}
            b"trak" => {
                let track = traks.next().ok_or_else(|| child.reader().error("more 'trak' boxes than tracks"))?;
                patch_trak(&mut out, &child, track)?;
            }
            _ => out.put_slice(child.data),
        }
    }
    close(&mut out, start);
    Ok(out.freeze())
}

fn write_edits(out: &mut BytesMut, edits: &[Edit]) {
    let entries: Vec<_> =
        edits.iter().map(|e| (e.segment_duration_movie_ticks, e.media_time_ticks, e.media_rate_integer)).collect();
    write_edts(out, &entries);
}

fn patch_trak(out: &mut BytesMut, trak: &Child<'_>, patch: &TrackPatch<'_>) -> Result<(), Mp4Error> {
    let start = open(out, b"trak");
    let mut has_edts = false;
    for c in trak.reader().children() {
        has_edts |= c?.fourcc.0 == *b"edts";
    }
    for c in trak.reader().children() {
        let c = c?;
        match &c.fourcc.0 {
            b"tkhd" => {
                rewrite_timed(out, &c, None, patch.track_duration)?;
                if let (false, Some(edits)) = (has_edts, patch.edits) {
                    write_edits(out, edits);
                }
            }
            b"edts" => {
                if let Some(edits) = patch.edits {
                    write_edits(out, edits);
                }
            }
            b"mdia" => patch_mdia(out, &c, patch)?,
            _ => out.put_slice(c.data),
        }
    }
    close(out, start);
    Ok(())
}

fn patch_mdia(out: &mut BytesMut, mdia: &Child<'_>, patch: &TrackPatch<'_>) -> Result<(), Mp4Error> {
    let start = open(out, b"mdia");
    for m in mdia.reader().children() {
        let m = m?;
        match &m.fourcc.0 {
            b"mdhd" => rewrite_timed(out, &m, patch.media_timescale, patch.media_duration)?,
            b"minf" => {
                let minf = open(out, b"minf");
                for n in m.reader().children() {
                    let n = n?;
                    if n.fourcc.0 == *b"stbl" {
                        patch_stbl(out, &n, patch)?;
                    } else {
                        out.put_slice(n.data);
                    }
                }
                close(out, minf);
            }
            _ => out.put_slice(m.data),
        }
    }
    close(out, start);
    Ok(())
}

/// Whether an `stbl` child survives a patch as it was.
pub fn kept_in_stbl(fourcc: FourCc, own_sample_groups: bool) -> bool {
    let dropped = PER_SAMPLE.contains(&&fourcc.0) || (own_sample_groups && fourcc.0 == *b"sgpd");
    !dropped
}

fn patch_stbl(out: &mut BytesMut, stbl: &Child<'_>, patch: &TrackPatch<'_>) -> Result<(), Mp4Error> {
    let start = open(out, b"stbl");
    // New entries replace the `stsd` where it is; an `stbl` without one gets it first, where
    // ISO/IEC 14496-12 §8.5.2 and every writer put it.
    let has_stsd = stbl.reader().children().any(|c| c.is_ok_and(|c| c.fourcc.0 == *b"stsd"));
    if let (Some(entries), false) = (patch.entries, has_stsd) {
        write_stsd(out, entries);
    }
    for c in stbl.reader().children() {
        let c = c?;
        match (&c.fourcc.0, patch.entries) {
            (b"stsd", Some(entries)) => write_stsd(out, entries),
            _ if kept_in_stbl(c.fourcc, patch.sample_groups) => out.put_slice(c.data),
            _ => {}
        }
    }
    patch.tables.write(out);
    out.put_slice(patch.extra);
    close(out, start);
    Ok(())
}

/// An `stsd` holding `entries`.
fn write_stsd(out: &mut BytesMut, entries: &[Bytes]) {
    let stsd = open_full(out, b"stsd", 0, 0);
    out.put_u32(entries.len() as u32);
    entries.iter().for_each(|e| out.put_slice(e));
    close(out, stsd);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box with `body`.
    fn boxed(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        super::super::write::leaf(&mut b, fourcc, body);
        b.to_vec()
    }

    /// A `moov` with one `trak` whose `stbl` holds `stbl_children`, and an `mvex`.
    fn moov(stbl_children: &[&[u8; 4]]) -> Vec<u8> {
        let stbl: Vec<u8> = stbl_children.iter().flat_map(|f| boxed(f, &[0, 0, 0, 0, 1, 2, 3, 4])).collect();
        let minf = [boxed(b"vmhd", &[0; 12]), boxed(b"stbl", &stbl)].concat();
        let mdhd = boxed(b"mdhd", &[[0u8; 12].as_slice(), &90_000u32.to_be_bytes(), &[0; 8]].concat());
        let mdia = [mdhd, boxed(b"hdlr", &[0; 24]), boxed(b"minf", &minf)].concat();
        let tkhd = boxed(b"tkhd", &[0; 84]);
        let trak = [tkhd, boxed(b"mdia", &mdia), boxed(b"udta", b"kept")].concat();
        let mvhd = boxed(b"mvhd", &[[0u8; 12].as_slice(), &1000u32.to_be_bytes(), &[0; 84]].concat());
        boxed(b"moov", &[mvhd, boxed(b"trak", &trak), boxed(b"mvex", &[0; 8])].concat())
    }

    fn stbl_children(moov: &[u8]) -> Vec<[u8; 4]> {
        let mut r = Reader::new(&moov[8..], 8, FourCc::new(b"moov"));
        for name in [b"trak", b"mdia", b"minf", b"stbl"] {
            r = r.children().map(Result::unwrap).find(|c| c.fourcc.0 == *name).unwrap().reader();
        }
        r.children().map(|c| c.unwrap().fourcc.0).collect()
    }

    #[test]
    fn per_sample_boxes_go_the_rest_stays_and_tables_come_last() {
        let input = moov(&[b"stsd", b"stts", b"saiz", b"saio", b"sdtp", b"sbgp", b"sgpd", b"zzzz", b"stco"]);
        let mut tables = TableBuilder::new();
        tables.start_chunk(100, 1);
        tables.push(10, 3000, 0, true);
        let track = TrackPatch {
            track_duration: 33,
            media_timescale: None,
            media_duration: 3000,
            edits: None,
            entries: None,
            tables: &tables,
            extra: &[],
            sample_groups: false,
        };
        let patch =
            MoviePatch { timescale: 1000, duration: 33, next_track_id: 2, tracks: std::slice::from_ref(&track) };
        let out = patch_moov(&input, 0, 8, &patch).unwrap();
        let kids = stbl_children(&out);
        let names: Vec<&[u8]> = kids.iter().map(|k| k.as_slice()).collect();
        assert_eq!(names, [&b"stsd"[..], b"sgpd", b"zzzz", b"stts", b"stsz", b"stsc", b"stco"]);
        assert!(!out.windows(4).any(|w| w == b"mvex"));
        assert!(out.windows(4).any(|w| w == b"udta"));

        // A caller that writes its own groups (append) drops the old `sgpd` as well.
        let own = TrackPatch { sample_groups: true, extra: &boxed(b"sgpd", &[0; 8]), ..track };
        let patch = MoviePatch { tracks: std::slice::from_ref(&own), ..patch };
        let kids = stbl_children(&patch_moov(&input, 0, 8, &patch).unwrap());
        assert_eq!(kids.iter().filter(|k| *k == b"sgpd").count(), 1);
        assert!(kids.iter().any(|k| k == b"zzzz"));
    }

    #[test]
    fn new_entries_make_an_stsd_when_the_stbl_has_none() {
        let entry = Bytes::from(boxed(b"avc1", &[7; 16]));
        let tables = TableBuilder::new();
        let track = TrackPatch {
            track_duration: 0,
            media_timescale: None,
            media_duration: 0,
            edits: None,
            entries: Some(std::slice::from_ref(&entry)),
            tables: &tables,
            extra: &[],
            sample_groups: false,
        };
        let patch = MoviePatch { timescale: 1000, duration: 0, next_track_id: 2, tracks: std::slice::from_ref(&track) };
        for (input, want) in [
            (moov(&[b"stts", b"zzzz"]), [&b"stsd"[..], b"zzzz", b"stts", b"stsz", b"stsc", b"stco"]),
            (moov(&[b"zzzz", b"stsd"]), [&b"zzzz"[..], b"stsd", b"stts", b"stsz", b"stsc", b"stco"]),
        ] {
            let out = patch_moov(&input, 0, 8, &patch).unwrap();
            let kids = stbl_children(&out);
            let names: Vec<&[u8]> = kids.iter().map(|k| k.as_slice()).collect();
            assert_eq!(names, want);
            // One entry, the new one, in the one `stsd`.
            let at = out.windows(4).position(|w| w == b"stsd").unwrap();
            assert_eq!(&out[at + 8..at + 12], &1u32.to_be_bytes());
            assert_eq!(&out[at + 12..at + 12 + entry.len()], &entry[..]);
        }
        // Without new entries, no `stsd` is made up.
        let copied = TrackPatch { entries: None, ..track };
        let out = patch_moov(&moov(&[b"stts"]), 0, 8, &MoviePatch { tracks: std::slice::from_ref(&copied), ..patch })
            .unwrap();
        assert!(!stbl_children(&out).contains(b"stsd"));
    }

    #[test]
    fn edits_are_replaced_inserted_or_dropped() {
        let input = moov(&[b"stsd"]);
        let tables = TableBuilder::new();
        let edits = [Edit { segment_duration_movie_ticks: 10, media_time_ticks: 0, media_rate_integer: 1 }];
        let track = TrackPatch {
            track_duration: 10,
            media_timescale: Some(48_000),
            media_duration: 0,
            edits: Some(&edits),
            entries: Some(&[]),
            tables: &tables,
            extra: &[],
            sample_groups: false,
        };
        let patch =
            MoviePatch { timescale: 1000, duration: 10, next_track_id: 2, tracks: std::slice::from_ref(&track) };
        let with = patch_moov(&input, 0, 8, &patch).unwrap();
        assert!(with.windows(4).any(|w| w == b"elst"));
        let again =
            patch_moov(&with, 0, 8, &MoviePatch { tracks: &[TrackPatch { edits: None, ..track }], ..patch }).unwrap();
        assert!(!again.windows(4).any(|w| w == b"edts"));
        // Too few patches for the `trak` boxes is an error, not a panic.
        assert!(patch_moov(&input, 0, 8, &MoviePatch { tracks: &[], ..patch }).is_err());
    }

    /// The corpus recording (`moov` at the end) with, in its video `stbl`, an `sdtp` that
    /// says more than `stss`, an `sbgp`/`sgpd` pair, `saiz`/`saio` and an unknown box.
    fn corpus_with_per_sample_boxes() -> Vec<u8> {
        const CORPUS: &[u8] = include_bytes!("../../../tests/fixtures/tools/h264_aac_reference_1s.mp4");
        let moov_at =
            CORPUS.len() - u32::from_be_bytes(CORPUS[CORPUS.len() - 2447..][..4].try_into().unwrap()) as usize;
        assert_eq!(&CORPUS[moov_at + 4..moov_at + 8], b"moov");
        let samples = 30u32;
        let mut sdtp = vec![0u8; 4];
        sdtp.extend((0..samples).map(|i| if i % 3 == 2 { 0x08 } else { 0x04 }));
        let sbgp = [&[0u8; 4][..], b"rap ", &1u32.to_be_bytes(), &samples.to_be_bytes(), &1u32.to_be_bytes()].concat();
        let sgpd = [&[1u8, 0, 0, 0][..], b"rap ", &1u32.to_be_bytes(), &1u32.to_be_bytes(), &[0x80]].concat();
        let saiz = [&[0u8; 4][..], &[8], &samples.to_be_bytes()].concat();
        let saio = [&[0u8; 4][..], &1u32.to_be_bytes(), &0u32.to_be_bytes()].concat();
        let extra = [
            boxed(b"sdtp", &sdtp),
            boxed(b"sbgp", &sbgp),
            boxed(b"sgpd", &sgpd),
            boxed(b"saiz", &saiz),
            boxed(b"saio", &saio),
            boxed(b"zzzz", b"kept"),
        ]
        .concat();
        // The first `stbl` is the video track's: every box around it grows by `extra`.
        let mut file = CORPUS.to_vec();
        let stbl = moov_at + file[moov_at..].windows(4).position(|w| w == b"stbl").unwrap() - 4;
        let end = stbl + u32::from_be_bytes(file[stbl..stbl + 4].try_into().unwrap()) as usize;
        file.splice(end..end, extra.iter().copied());
        for fourcc in [b"moov", b"trak", b"mdia", b"minf", b"stbl"] {
            let at = moov_at + file[moov_at..].windows(4).position(|w| w == fourcc).unwrap() - 4;
            let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) + extra.len() as u32;
            file[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
        file
    }

    /// The `stbl` children of every `trak` of `moov`.
    fn stbls(moov: &[u8]) -> Vec<Vec<[u8; 4]>> {
        let root = Reader::new(&moov[8..], 8, FourCc::new(b"moov"));
        let mut out = Vec::new();
        for trak in root.children().map(Result::unwrap).filter(|c| c.fourcc.0 == *b"trak") {
            let mut r = trak.reader();
            for name in [b"mdia", b"minf", b"stbl"] {
                r = r.children().map(Result::unwrap).find(|c| c.fourcc.0 == *name).unwrap().reader();
            }
            out.push(r.children().map(|c| c.unwrap().fourcc.0).collect());
        }
        out
    }

    #[test]
    fn finalize_and_append_keep_and_drop_the_same_boxes() {
        use super::super::append::{Clip, InputData, InputIndex, Merge, OutPiece};
        use super::super::finalize::FragmentIndex;
        use std::collections::BTreeSet;
        use std::io::Cursor;

        let file = corpus_with_per_sample_boxes();
        let data = InputData::read(&mut Cursor::new(&file), file.len() as u64).unwrap();
        let (moov_offset, hl, moov) = data.moov.clone().unwrap();
        // finalize / `--to mp4`: the index of the samples the `moov` holds.
        let finalized = FragmentIndex::new(moov.clone(), moov_offset, hl).unwrap().final_moov().unwrap();
        // append: the file after itself.
        let index = InputIndex::build(&data, "input").unwrap();
        let clip = |input_no| Clip { input: &index, input_no, chunks: 0..index.chunks.len() };
        let merge = Merge::new(vec![clip(0), clip(1)], false).unwrap();
        let mut out = Vec::new();
        for k in 0..2 {
            for c in 0..index.chunks.len() {
                for p in index.chunks[c].clone() {
                    out.push(OutPiece { clip: k, piece: p, offset: index.pieces[p].offset });
                }
            }
        }
        let (appended, _) = merge.build_moov(&out).unwrap();

        let input = stbls(&moov);
        let (fin, app) = (stbls(&finalized), stbls(&appended));
        for (t, ((i, f), a)) in input.iter().zip(&fin).zip(&app).enumerate() {
            let set = |v: &Vec<[u8; 4]>| v.iter().copied().collect::<BTreeSet<_>>();
            // Each box at most once: nothing stale next to its replacement.
            assert_eq!(set(f).len(), f.len(), "track {t}: {f:?}");
            assert_eq!(set(a).len(), a.len(), "track {t}: {a:?}");
            // Copied from the input: the same for both, none of the per-sample boxes.
            let copied = |v: &Vec<[u8; 4]>| -> BTreeSet<[u8; 4]> {
                set(v).into_iter().filter(|b| set(i).contains(b) && kept_in_stbl(FourCc(*b), true)).collect()
            };
            let kept: BTreeSet<[u8; 4]> = set(i).into_iter().filter(|b| kept_in_stbl(FourCc(*b), true)).collect();
            assert_eq!(copied(f), kept, "track {t}");
            assert_eq!(copied(a), kept, "track {t}");
            for gone in [b"saiz", b"saio"] {
                assert!(!f.contains(gone) && !a.contains(gone), "track {t}");
            }
            // The per-sample boxes written: the same, but for what only append knows
            // (the `moov`'s own `sdtp` bytes and group runs are not read back by finalize).
            let tables = |v: &Vec<[u8; 4]>| -> BTreeSet<[u8; 4]> {
                set(v).into_iter().filter(|b| PER_SAMPLE.contains(&b)).collect()
            };
            let only_append: BTreeSet<[u8; 4]> = tables(a).difference(&tables(f)).copied().collect();
            assert!(tables(f).is_subset(&tables(a)), "track {t}: {f:?} {a:?}");
            assert!(only_append.iter().all(|b| [*b"sdtp", *b"sbgp"].contains(b)), "track {t}: {only_append:?}");
        }
        // The video track carried all of them in; append keeps its sdtp and groups.
        assert!(app[0].contains(b"sdtp") && app[0].contains(b"sbgp") && app[0].contains(b"zzzz"));
        assert!(fin[0].contains(b"zzzz"));
    }
}
