//! Tests of the reader: chunking, unknown sizes, cuts, damage.

use super::*;

/// EBML header, unknown-size Segment, Info, unknown-size Cluster with two blocks, a
/// known-size Cluster with one.
pub(crate) fn sample() -> Vec<u8> {
    let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x82, 0x81, b'w'];
    v.extend([0x18, 0x53, 0x80, 0x67, 0xFF]);
    v.extend([0x15, 0x49, 0xA9, 0x66, 0x84, 0x2A, 0xD7, 0xB1, 0x80]);
    v.extend([0xEC, 0x82, 0, 0]);
    v.extend([0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    v.extend([0xE7, 0x81, 0x00]);
    v.extend([0xA3, 0x86, 0x81, 0x00, 0x00, 0x80, 0xAA, 0xBB]);
    v.extend([0xA3, 0x85, 0x81, 0x00, 0x21, 0x00, 0xCC]);
    v.extend([0x1F, 0x43, 0xB6, 0x75, 0x89, 0xE7, 0x81, 0x64, 0xA3, 0x84, 0x81, 0x00, 0x00, 0x80]);
    v
}

fn items(data: &[u8], pieces: &[usize]) -> (Vec<MkvItem>, EndState) {
    let mut r = MkvReader::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in pieces.iter().chain(std::iter::once(&usize::MAX)) {
        let end = at + n.min(data.len() - at);
        r.push(Bytes::copy_from_slice(&data[at..end]));
        at = end;
        while let Some(i) = r.poll().unwrap() {
            out.push(i);
        }
        if at == data.len() {
            break;
        }
    }
    (out, r.finish())
}

fn kinds(items: &[MkvItem]) -> Vec<&'static str> {
    items
        .iter()
        .map(|i| match i {
            MkvItem::EbmlHeader(_) => "ebml",
            MkvItem::SegmentStart { .. } => "segment",
            MkvItem::Meta(_) => "meta",
            MkvItem::ClusterStart { .. } => "cluster",
            MkvItem::ClusterTimestamp { .. } => "ts",
            MkvItem::Blocks { .. } => "blocks",
            MkvItem::Skipped { .. } => "skip",
        })
        .collect()
}

#[test]
fn unknown_sizes_end_at_the_next_sibling() {
    let data = sample();
    let (got, end) = items(&data, &[]);
    assert_eq!(kinds(&got), ["ebml", "segment", "meta", "skip", "cluster", "ts", "blocks", "cluster", "ts", "blocks"]);
    assert_eq!(end.cut, None);
    let offset = data.len() as u64 - 6;
    let block = Bytes::from_static(&[0xA3, 0x84, 0x81, 0, 0, 0x80]);
    assert_eq!(got[9], MkvItem::Blocks { offset, data: block.clone() });
    let MkvItem::Blocks { offset, data } = &got[6] else { panic!() };
    let two: Vec<_> = elements(*offset, data).map(Result::unwrap).collect();
    assert_eq!(two.iter().map(|e| e.data.len()).collect::<Vec<_>>(), [8, 7]);
}

/// Blocks as (offset, bytes), whatever the items that carried them.
fn flat(items: Vec<MkvItem>) -> Vec<MkvItem> {
    items
        .into_iter()
        .flat_map(|i| match i {
            MkvItem::Blocks { offset, data } => elements(offset, &data)
                .map(|e| e.unwrap())
                .map(|e| MkvItem::Blocks { offset: e.offset, data: e.data })
                .collect(),
            other => vec![other],
        })
        .collect()
}

#[test]
fn any_chunking_gives_the_same_items() {
    let data = sample();
    let whole = flat(items(&data, &[]).0);
    for step in 1..data.len() {
        let pieces = vec![step; data.len() / step + 1];
        assert_eq!(flat(items(&data, &pieces).0), whole, "pieces of {step}");
    }
}

#[test]
fn a_cut_keeps_every_complete_block() {
    let data = sample();
    let cut = data.len() - 14 - 2; // inside the second block of the first cluster
    let (got, end) = items(&data[..cut], &[]);
    assert_eq!(kinds(&got), ["ebml", "segment", "meta", "skip", "cluster", "ts", "blocks"]);
    let c = end.cut.unwrap();
    assert_eq!(c.kind, Some(ElementKind::Ebml(0xA3)));
}

/// Items of a resynchronising reader fed in pieces of `step` bytes.
fn resync_items(data: &[u8], step: usize) -> (Vec<MkvItem>, Vec<String>, EndState) {
    let mut r = MkvReader::resynchronising();
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        r.push(Bytes::copy_from_slice(piece));
        while let Some(i) = r.poll().unwrap() {
            out.push(i);
        }
    }
    (flat(out), r.notes(), r.finish())
}

#[test]
fn damaged_data_is_skipped_up_to_the_next_cluster() {
    let mut data = sample();
    // Overwrite the second block of the unknown-size cluster (at 50..57) with garbage.
    data[50..57].copy_from_slice(&[0x0A, 0x00, 0x33, 0x1F, 0x43, 0xB6, 0x00]);
    let (got, notes, end) = resync_items(&data, data.len());
    assert_eq!(kinds(&got), ["ebml", "segment", "meta", "skip", "cluster", "ts", "blocks", "cluster", "ts", "blocks"]);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("bytes 50..57 (7 bytes) skipped"), "{notes:?}");
    assert_eq!(end.cut, None);
    for step in 1..data.len() {
        let (again, notes_again, _) = resync_items(&data, step);
        assert_eq!(again, got, "pieces of {step}");
        assert_eq!(notes_again, notes, "pieces of {step}");
    }
    // Without the option, the same bytes are an error.
    let mut r = MkvReader::new();
    r.push(Bytes::from(data.clone()));
    assert!(std::iter::from_fn(|| r.poll().transpose()).any(|i| i.is_err()));
    // Damage that runs to the end of the input is a cut there.
    let cut = data.len() - 14;
    let (got, notes, end) = resync_items(&data[..cut], 5);
    assert_eq!(kinds(&got), ["ebml", "segment", "meta", "skip", "cluster", "ts", "blocks"]);
    assert!(notes[0].contains("from byte 50 to the end of the input"), "{notes:?}");
    assert_eq!(end.cut.map(|c| c.offset), Some(50));
}

#[test]
fn a_search_without_a_cluster_gives_up_with_the_first_error() {
    let mut data = sample();
    data.truncate(50);
    data.push(0x0A);
    let mut r = MkvReader::resynchronising();
    r.push(Bytes::from(data));
    while r.poll().unwrap().is_some() {}
    let mut fed = 0u64;
    let zeros = Bytes::from(vec![0u8; 1 << 20]);
    let err = loop {
        r.push(zeros.clone());
        fed += zeros.len() as u64;
        match r.poll() {
            Ok(None) => assert!(fed <= MAX_RESYNC_SCAN + (2 << 20), "searched past the bound"),
            Ok(Some(i)) => panic!("found {i:?} in zeros"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.offset(), 50);
    // The search held at most a window of bytes.
    assert!(r.queued <= RESYNC_WINDOW as u64 + (1 << 20));
}

#[test]
fn garbage_is_invalid_at_its_offset() {
    let mut data = sample();
    data[27] = 0x00; // the unknown-size cluster's ID
    let mut r = MkvReader::new();
    r.push(Bytes::from(data));
    let err = loop {
        match r.poll() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.offset(), 27);
}
