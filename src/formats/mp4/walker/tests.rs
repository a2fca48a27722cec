//! Tests of the walker: chunking, cuts, damage and resynchronisation.

use super::*;

fn bx(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(body);
    v
}

/// Events with adjacent media merged, so chunkings can be compared.
fn run(input: &[u8], chunk: usize) -> (Vec<ContainerEvent>, EndState) {
    let mut w = Mp4Walker::new();
    let mut out: Vec<ContainerEvent> = Vec::new();
    let mut off = 0;
    while off < input.len() {
        let end = (off + chunk).min(input.len());
        w.push(Chunk::new(off as u64, input[off..end].to_vec())).unwrap();
        off = end;
        while let Some(ev) = w.poll().unwrap() {
            if let (ContainerEvent::Media(c), Some(ContainerEvent::Media(prev))) = (&ev, out.last_mut()) {
                if prev.end() == c.offset {
                    let mut d = prev.data.to_vec();
                    d.extend_from_slice(&c.data);
                    prev.data = d.into();
                    continue;
                }
            }
            out.push(ev);
        }
    }
    (out, w.finish())
}

fn sample_file() -> Vec<u8> {
    let mut f = bx(b"ftyp", b"isomiso2");
    f.extend(bx(b"moov", &[7u8; 40]));
    f.extend(bx(b"mdat", &(0..=255u8).collect::<Vec<_>>()));
    f.extend(bx(b"free", &[0; 5]));
    f
}

#[test]
fn chunking_never_changes_the_events() {
    let f = sample_file();
    let (whole, end) = run(&f, f.len());
    assert_eq!(end.cut, None);
    assert_eq!(whole.len(), 5, "{whole:?}");
    for size in 1..40 {
        assert_eq!(run(&f, size).0, whole, "chunk size {size}");
    }
}

#[test]
fn cut_inside_a_box_is_reported_not_an_error() {
    let f = sample_file();
    for cut in 1..f.len() {
        let (_, end) = run(&f[..cut], 7);
        assert_eq!(end.input_len, cut as u64);
    }
    let (_, end) = run(&f[..100], 100);
    let c = end.cut.unwrap();
    assert_eq!(c.offset, 64);
    assert_eq!(c.declared_end, Some(64 + 264));
}

#[test]
fn oversized_meta_box_is_refused_before_allocating() {
    let mut f = (u32::MAX).to_be_bytes().to_vec();
    f.extend_from_slice(b"moof");
    let mut w = Mp4Walker::new();
    w.push(Chunk::new(0, f)).unwrap();
    assert!(matches!(w.poll(), Err(Mp4Error::TooLarge { .. })));
}

/// Events of a whole input, with its notes; errors end the run.
fn run_all(input: &[u8], chunk: usize) -> (Vec<ContainerEvent>, Result<(), Mp4Error>, Vec<String>) {
    let mut w = Mp4Walker::new();
    let mut out = Vec::new();
    let mut off = 0;
    while off < input.len() {
        let end = (off + chunk).min(input.len());
        w.push(Chunk::new(off as u64, input[off..end].to_vec())).unwrap();
        off = end;
        loop {
            match w.poll() {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => break,
                Err(e) => return (out, Err(e), w.take_notes()),
            }
        }
    }
    (out, Ok(()), w.take_notes())
}

fn moof(seq: u32) -> Vec<u8> {
    let mut mfhd = vec![0, 0, 0, 0];
    mfhd.extend_from_slice(&seq.to_be_bytes());
    bx(b"moof", &bx(b"mfhd", &mfhd))
}

fn media_of(events: &[ContainerEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| if let ContainerEvent::Media(c) = e { Some(c.data.to_vec()) } else { None })
        .collect::<Vec<_>>()
        .concat()
}

fn damage(events: &[ContainerEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            ContainerEvent::Skipped(r) if r.kind == ElementKind::Mp4(DAMAGED) => Some((r.offset, r.size.unwrap())),
            _ => None,
        })
        .collect()
}

#[test]
fn garbage_between_boxes_is_skipped_to_the_next_moof_and_named() {
    let mut f = bx(b"ftyp", b"isomiso2");
    f.extend(moof(1));
    f.extend(bx(b"mdat", &[1u8; 50]));
    let garbage_at = f.len();
    f.extend((0..300u32).map(|i| (i * 7 + 0x80) as u8));
    let resume = f.len();
    f.extend(moof(2));
    f.extend(bx(b"mdat", &[2u8; 20]));
    for chunk in [1, 5, 16, 17, 64, f.len()] {
        let (events, result, notes) = run_all(&f, chunk);
        result.unwrap();
        assert_eq!(damage(&events), [(garbage_at as u64, (resume - garbage_at) as u64)], "chunk {chunk}");
        let metas = events.iter().filter(|e| matches!(e, ContainerEvent::Meta(m) if m.offset == resume as u64));
        assert_eq!(metas.count(), 1, "chunk {chunk}: the second moof is read");
        assert_eq!(media_of(&events), [vec![1u8; 50], vec![2u8; 20]].concat(), "chunk {chunk}");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains(&format!("bytes {garbage_at}..{resume}")), "{notes:?}");
    }
}

#[test]
fn a_moof_inside_an_mdat_of_a_fragmented_stream_ends_that_mdat() {
    let mut f = bx(b"ftyp", b"isomiso2");
    f.extend(moof(1));
    // An mdat that declares 1000 bytes, of which 300 are missing: the next moof
    // starts inside it.
    let mut mdat = bx(b"mdat", &[1u8; 1000]);
    mdat.truncate(8 + 700);
    f.extend(mdat);
    let moof2_at = f.len();
    f.extend(moof(2));
    f.extend(bx(b"mdat", &[2u8; 400]));
    for chunk in [1, 3, 15, 16, 100, f.len()] {
        let (events, result, notes) = run_all(&f, chunk);
        result.unwrap();
        assert_eq!(damage(&events), [(moof2_at as u64, 0)], "chunk {chunk}");
        assert_eq!(media_of(&events), [vec![1u8; 700], vec![2u8; 400]].concat(), "chunk {chunk}");
        assert!(notes[0].contains(&format!("starts inside it at byte {moof2_at}")), "{notes:?}");
    }
    // A stream that has shown no moof keeps its mdat whole: a moof-like pattern in
    // the media of a progressive file is media.
    let mut p = bx(b"ftyp", b"isomiso2");
    p.extend(bx(b"mdat", &moof(9)));
    let (events, result, _) = run_all(&p, 7);
    result.unwrap();
    assert!(damage(&events).is_empty());
    assert_eq!(media_of(&events), moof(9));
}

#[test]
fn damage_with_no_box_after_it_is_bounded_and_reported() {
    let mut f = bx(b"ftyp", b"isomiso2");
    f.extend(moof(1));
    f.extend(vec![0u8; 100_000]);
    let (events, result, notes) = run_all(&f, 4096);
    result.unwrap();
    assert!(damage(&events).is_empty());
    assert!(notes[0].contains("hold no box up to the end"), "{notes:?}");
    let mut w = Mp4Walker::new();
    w.push(Chunk::new(0, f.clone())).unwrap();
    while w.poll().unwrap().is_some() {}
    assert!(w.finish().cut.is_some());
    assert!(w.queued < CANDIDATE_LEN, "scanned bytes are not held");
}

#[test]
fn damage_before_any_media_or_index_is_an_error() {
    let f = [0, 0, 0, 4, b'm', b'o', b'o', b'v'];
    assert!(run_all(&f, 8).1.is_err());
    let mut g = bx(b"ftyp", b"isomiso2");
    g.extend_from_slice(&f);
    assert_eq!(run_all(&g, 8).1.unwrap_err().offset(), 16);
}

#[test]
fn declared_end_past_2_64_is_invalid_not_a_panic() {
    // A first box whose 64-bit size runs past 2^64 from a late start offset.
    let mut f = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e'];
    f.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut w = Mp4Walker::new();
    w.push(Chunk::new(100, f.clone())).unwrap();
    let err = w.poll().unwrap_err();
    assert_eq!(err.offset(), 100, "{err}");
    assert_eq!(w.finish().cut, Some(Cut { kind: None, offset: 100, declared_end: None }));
    // After a first box, the same header is damage and is skipped.
    let mut g = bx(b"ftyp", b"isomiso2");
    g.extend(moof(1));
    g.extend(&f);
    g.extend(moof(2));
    let (events, result, _) = run_all(&g, 9);
    result.unwrap();
    assert_eq!(damage(&events).len(), 1);
    // The cut of a box that runs past the end of the input never overflows.
    let mut w = Mp4Walker::new();
    let mut h = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
    h.extend_from_slice(&(u64::MAX - 10).to_be_bytes());
    w.push(Chunk::new(0, h)).unwrap();
    let _ = w.poll();
    let _ = w.finish();
}

#[test]
fn many_damaged_stretches_are_counted_after_the_first_few() {
    let mut f = bx(b"ftyp", b"isomiso2");
    f.extend(moof(99));
    for i in 0..20 {
        f.extend([0xEEu8; 40]);
        f.extend(moof(i));
    }
    let (events, result, notes) = run_all(&f, 1000);
    result.unwrap();
    assert_eq!(damage(&events).len(), 20);
    assert_eq!(notes.len(), MAX_DAMAGE_NOTES + 1, "{notes:?}");
    assert!(notes.last().unwrap().contains("12 more damaged stretches (480 bytes)"), "{notes:?}");
}

#[test]
fn jump_only_at_box_boundary() {
    let f = sample_file();
    let mut w = Mp4Walker::new();
    w.push(Chunk::new(16, f[16..64].to_vec())).unwrap();
    assert!(matches!(w.poll().unwrap(), Some(ContainerEvent::Meta(m)) if m.offset == 16));
    w.push(Chunk::new(0, f[0..10].to_vec())).unwrap();
    assert!(w.push(Chunk::new(40, f[40..50].to_vec())).is_err());
}
