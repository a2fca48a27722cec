//! Python-style slices over an input's chunks: `a.mp4[0:-1]`, `b.mp4[2:]`, `c.mp4[-1]`.

use std::fmt;
use std::ops::Range;

/// Why a slice argument is unusable. Shown to the user as a usage error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SliceError {
    #[error("'{arg}': bad slice '[{inner}]': {reason}")]
    Syntax { arg: String, inner: String, reason: String },
    #[error("{input}: chunk index {index} is out of range ({chunks} chunks)")]
    OutOfRange { input: String, index: i64, chunks: usize },
    #[error("{input}{slice} selects no chunk ({input} has {chunks})")]
    Empty { input: String, slice: ChunkSlice, chunks: usize },
}

/// A slice over chunks, with Python semantics: negative bounds count from the end, omitted
/// bounds mean the start or the end, out-of-range bounds are clamped. `[i]` is the single
/// chunk `i` (an error when out of range, as in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChunkSlice {
    /// Every chunk (no brackets, or `[:]`).
    #[default]
    All,
    /// `[start:stop]`, Python style: negative values count from the end, `stop` is
    /// excluded, a missing bound is the start or the end.
    Range {
        /// The first chunk kept.
        start: Option<i64>,
        /// The chunk after the last one kept.
        stop: Option<i64>,
    },
    /// `[i]`: one chunk (negative: from the end).
    Index(i64),
}

impl fmt::Display for ChunkSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound = |b: &Option<i64>| b.map(|v| v.to_string()).unwrap_or_default();
        match self {
            ChunkSlice::All => Ok(()),
            ChunkSlice::Range { start, stop } => write!(f, "[{}:{}]", bound(start), bound(stop)),
            ChunkSlice::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl ChunkSlice {
    /// The chunks selected out of `chunks`, as a range; `input` names the file in errors.
    pub fn resolve(&self, chunks: usize, input: &str) -> Result<Range<usize>, SliceError> {
        let n = chunks as i64;
        let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
        let range = match *self {
            ChunkSlice::All => 0..chunks,
            ChunkSlice::Range { start, stop } => {
                let a = start.map_or(0, clamp);
                let b = stop.map_or(n, clamp);
                a as usize..b.max(a) as usize
            }
            ChunkSlice::Index(i) => {
                let j = if i < 0 { i + n } else { i };
                if !(0..n).contains(&j) {
                    return Err(SliceError::OutOfRange { input: input.to_string(), index: i, chunks });
                }
                j as usize..j as usize + 1
            }
        };
        if range.is_empty() {
            return Err(SliceError::Empty { input: input.to_string(), slice: *self, chunks });
        }
        Ok(range)
    }
}

/// Splits a command-line argument into a path and a slice. An argument that names an
/// existing file is taken literally, brackets and all (`exists` tells); otherwise a trailing
/// `[...]` is parsed as a slice.
#[cfg(any(test, feature = "cli"))]
pub fn parse_input_arg(arg: &str, exists: impl Fn(&str) -> bool) -> Result<(String, ChunkSlice), SliceError> {
    if exists(arg) || !arg.ends_with(']') {
        return Ok((arg.to_string(), ChunkSlice::All));
    }
    let Some(open) = arg.rfind('[') else {
        return Ok((arg.to_string(), ChunkSlice::All));
    };
    let path = &arg[..open];
    let inner = &arg[open + 1..arg.len() - 1];
    let err =
        |reason: &str| SliceError::Syntax { arg: arg.to_string(), inner: inner.to_string(), reason: reason.into() };
    if path.is_empty() {
        return Err(err("no file name before the brackets"));
    }
    let int = |s: &str| -> Result<Option<i64>, SliceError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>().map(Some).map_err(|_| err(&format!("'{s}' is not an integer")))
    };
    let parts: Vec<&str> = inner.split(':').collect();
    let slice = match parts.as_slice() {
        [one] => match int(one)? {
            Some(i) => ChunkSlice::Index(i),
            None => return Err(err("empty index")),
        },
        [a, b] => ChunkSlice::Range { start: int(a)?, stop: int(b)? },
        [a, b, step] => {
            if !matches!(int(step)?, None | Some(1)) {
                return Err(err("a step other than 1 is not supported (chunks are appended in order)"));
            }
            ChunkSlice::Range { start: int(a)?, stop: int(b)? }
        }
        _ => return Err(err("too many ':'")),
    };
    let slice = match slice {
        ChunkSlice::Range { start: None | Some(0), stop: None } => ChunkSlice::All,
        s => s,
    };
    Ok((path.to_string(), slice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str) -> Result<(String, ChunkSlice), SliceError> {
        parse_input_arg(arg, |_| false)
    }

    fn sel(arg: &str, n: usize) -> Result<Range<usize>, SliceError> {
        let (path, s) = parse(arg)?;
        s.resolve(n, &path)
    }

    #[test]
    fn python_semantics() {
        assert_eq!(sel("a.mp4", 5).unwrap(), 0..5);
        assert_eq!(sel("a.mp4[0:-1]", 5).unwrap(), 0..4);
        assert_eq!(sel("a.mp4[0:1]", 5).unwrap(), 0..1);
        assert_eq!(sel("a.mp4[2:]", 5).unwrap(), 2..5);
        assert_eq!(sel("a.mp4[:2]", 5).unwrap(), 0..2);
        assert_eq!(sel("a.mp4[:]", 5).unwrap(), 0..5);
        assert_eq!(sel("a.mp4[-2:]", 5).unwrap(), 3..5);
        assert_eq!(sel("a.mp4[-10:3]", 5).unwrap(), 0..3);
        assert_eq!(sel("a.mp4[1:100]", 5).unwrap(), 1..5);
        assert_eq!(sel("a.mp4[-1]", 5).unwrap(), 4..5);
        assert_eq!(sel("a.mp4[3]", 5).unwrap(), 3..4);
        assert_eq!(sel("a.mp4[ 1 : -1 ]", 5).unwrap(), 1..4);
        assert_eq!(sel("a.mp4[0:5:1]", 5).unwrap(), 0..5);
    }

    #[test]
    fn empty_and_out_of_range_selections_are_errors() {
        assert!(matches!(sel("a.mp4[3:1]", 5), Err(SliceError::Empty { .. })));
        assert!(matches!(sel("a.mp4[5:]", 5), Err(SliceError::Empty { .. })));
        assert!(matches!(sel("a.mp4[0:-5]", 5), Err(SliceError::Empty { .. })));
        assert!(matches!(sel("a.mp4[5]", 5), Err(SliceError::OutOfRange { .. })));
        assert!(matches!(sel("a.mp4[-6]", 5), Err(SliceError::OutOfRange { .. })));
        let msg = sel("a.mp4[7:]", 5).unwrap_err().to_string();
        assert_eq!(msg, "a.mp4[7:] selects no chunk (a.mp4 has 5)");
    }

    #[test]
    fn bad_syntax_is_named() {
        for bad in ["a.mp4[x:1]", "a.mp4[]", "a.mp4[1:2:3]", "a.mp4[1:2:3:4]", "[0:1]", "a.mp4[0:1:0]"] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, SliceError::Syntax { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn existing_file_with_brackets_is_literal() {
        let (p, s) = parse_input_arg("take[1].mp4", |_| false).unwrap();
        assert_eq!((p.as_str(), s), ("take[1].mp4", ChunkSlice::All));
        let (p, s) = parse_input_arg("odd[0:1]", |a| a == "odd[0:1]").unwrap();
        assert_eq!((p.as_str(), s), ("odd[0:1]", ChunkSlice::All));
        let (p, s) = parse_input_arg("dir[x]/a.mp4[1:]", |_| false).unwrap();
        assert_eq!((p.as_str(), s), ("dir[x]/a.mp4", ChunkSlice::Range { start: Some(1), stop: None }));
    }
}
