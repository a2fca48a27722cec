//! The one vocabulary of file changes: what a finalizer, a muxer's clean stop and an append
//! plan say to do to a file, as data. Nothing here touches a file: [`crate::io`] carries a
//! plan out on disk, [`apply_in_memory`] on bytes held in memory (simulations, the
//! crash-replay tests, the fuzz targets), and both give the same bytes.

use bytes::Bytes;

use crate::model::Fragment;

/// One step of a change to a file: the finalize at a clean stop, `livemux finalize` on a
/// file left behind, or an append.
///
/// A finalize plan's steps are applied in order, each made durable before the next begins,
/// so a plan whose every prefix leaves a valid file keeps the file valid through a crash at
/// any moment. An append plan says where durability is needed with [`WriteStep::Sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteStep {
    /// Write `data` at `offset`, inside the file or past its end.
    Write {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Cut (or extend with zeros) the file to `len` bytes (an incomplete last fragment).
    Truncate {
        /// The new length.
        len: u64,
    },
    /// Copy `len` bytes of input `input` (for an append: 0 is TARGET, then the sources), at
    /// `from` in it, to `to` in the file. The inputs are read as they were before the plan.
    Copy {
        /// Which input.
        input: usize,
        /// Where in the input.
        from: u64,
        /// How many bytes.
        len: u64,
        /// Where in the file.
        to: u64,
    },
    /// A barrier: everything before reaches stable storage before anything after begins.
    Sync,
}

impl WriteStep {
    /// Bytes the step writes: 0 for a truncation or a barrier, which still do something
    /// (hence no `is_empty`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        match self {
            WriteStep::Write { data, .. } => data.len() as u64,
            WriteStep::Copy { len, .. } => *len,
            WriteStep::Truncate { .. } | WriteStep::Sync => 0,
        }
    }

    /// The write of a fragment at its offset.
    pub fn from_fragment(fragment: &Fragment) -> Self {
        WriteStep::Write { offset: fragment.offset, data: fragment.to_bytes() }
    }

    /// Every write a file output makes for `fragment`, in order: its index's `prepare`, the
    /// fragment at its offset, its index's `publish` ([`Fragment::index`]).
    pub fn for_fragment(fragment: &Fragment) -> Vec<Self> {
        let in_place = |w: &[(u64, bytes::Bytes)]| {
            w.iter().map(|(offset, data)| WriteStep::Write { offset: *offset, data: data.clone() }).collect::<Vec<_>>()
        };
        let mut steps = in_place(&fragment.index.prepare);
        steps.push(Self::from_fragment(fragment));
        steps.extend(in_place(&fragment.index.publish));
        steps
    }

    /// Where the step starts writing, if it writes.
    pub fn write_start(&self) -> Option<u64> {
        match self {
            WriteStep::Write { offset, .. } => Some(*offset),
            WriteStep::Copy { to, .. } => Some(*to),
            WriteStep::Truncate { .. } | WriteStep::Sync => None,
        }
    }
}

/// What a finalizer decided to do to a file, and why.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FinalizePlan {
    /// The changes, in order.
    pub steps: Vec<WriteStep>,
    /// One line each, for the user: where the index went, what was dropped...
    pub notes: Vec<String>,
}

/// Why [`try_apply_in_memory`] stopped: a step that would make the file longer than
/// allowed, or reads past the end of an input (or names one that is not there).
#[cfg(any(test, feature = "internals"))]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("step {step} of the plan reaches outside the file or its inputs")]
pub struct OutOfRange {
    /// The index of the step.
    pub step: usize,
}

/// Applies `steps` to a file held in memory, as [`crate::io`] applies them to a file on
/// disk; `inputs[i]` holds input `i` as it was before the plan (for an append in place,
/// the file itself is input 0). Returns the bytes written.
///
/// # Panics
/// On a step that reaches outside an input: a test's plan is wrong. Use
/// [`try_apply_in_memory`] for untrusted plans.
#[cfg(any(test, feature = "internals"))]
pub fn apply_in_memory(file: &mut Vec<u8>, inputs: &[&[u8]], steps: &[WriteStep]) -> u64 {
    match try_apply_in_memory(file, inputs, steps, usize::MAX as u64) {
        Ok(n) => n,
        Err(e) => panic!("{e}: {:?}", steps[e.step]),
    }
}

/// [`apply_in_memory`] that never grows the file past `max_len` bytes and never panics:
/// the steps before the one that fails stay applied.
#[cfg(any(test, feature = "internals"))]
pub fn try_apply_in_memory(
    file: &mut Vec<u8>,
    inputs: &[&[u8]],
    steps: &[WriteStep],
    max_len: u64,
) -> Result<u64, OutOfRange> {
    let mut written = 0;
    for (i, step) in steps.iter().enumerate() {
        let out_of_range = OutOfRange { step: i };
        let end = |at: u64, len: u64| at.checked_add(len).filter(|e| *e <= max_len).map(|e| e as usize);
        match step {
            WriteStep::Write { offset, data } => {
                let end = end(*offset, data.len() as u64).ok_or(out_of_range)?;
                write_at(file, *offset as usize, end, data);
            }
            WriteStep::Copy { input, from, len, to } => {
                let to_end = end(*to, *len).ok_or(out_of_range.clone())?;
                let source = inputs.get(*input).ok_or(out_of_range.clone())?;
                let from_end = from.checked_add(*len).filter(|e| *e <= source.len() as u64).ok_or(out_of_range)?;
                write_at(file, *to as usize, to_end, &source[*from as usize..from_end as usize]);
            }
            WriteStep::Truncate { len } => {
                let len = end(*len, 0).ok_or(out_of_range)?;
                file.resize(len, 0);
            }
            WriteStep::Sync => {}
        }
        written += step.len();
    }
    Ok(written)
}

#[cfg(any(test, feature = "internals"))]
fn write_at(file: &mut Vec<u8>, at: usize, end: usize, data: &[u8]) {
    // Writing nothing does not extend a file on disk (`pwrite` of 0 bytes), so not here either.
    if data.is_empty() {
        return;
    }
    if file.len() < end {
        file.resize(end, 0);
    }
    file[at..end].copy_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_apply_like_a_file_would() {
        let mut f = b"abcdef".to_vec();
        let input = b"0123456789".to_vec();
        let steps = [
            WriteStep::Write { offset: 8, data: Bytes::from_static(b"xy") },
            WriteStep::Sync,
            WriteStep::Copy { input: 0, from: 2, len: 3, to: 1 },
            WriteStep::Truncate { len: 9 },
            // Nothing written past the end does not make the file longer.
            WriteStep::Write { offset: 20, data: Bytes::new() },
            WriteStep::Copy { input: 0, from: 0, len: 0, to: 30 },
        ];
        assert_eq!(apply_in_memory(&mut f, &[&input], &steps), 5);
        assert_eq!(f, b"a234ef\0\0x");
    }

    #[test]
    fn untrusted_plans_stop_at_the_step_out_of_range() {
        let mut f = vec![1u8; 4];
        let big =
            [WriteStep::Truncate { len: 2 }, WriteStep::Write { offset: u64::MAX, data: Bytes::from_static(b"x") }];
        assert_eq!(try_apply_in_memory(&mut f, &[], &big, 100), Err(OutOfRange { step: 1 }));
        assert_eq!(f, [1, 1]);
        let copy = [WriteStep::Copy { input: 1, from: 0, len: 1, to: 0 }];
        assert_eq!(try_apply_in_memory(&mut f, &[b"a"], &copy, 100), Err(OutOfRange { step: 0 }));
        let past = [WriteStep::Copy { input: 0, from: 1, len: 1, to: 0 }];
        assert_eq!(try_apply_in_memory(&mut f, &[b"a"], &past, 100), Err(OutOfRange { step: 0 }));
        assert_eq!(
            try_apply_in_memory(&mut f, &[], &[WriteStep::Truncate { len: 101 }], 100),
            Err(OutOfRange { step: 0 })
        );
    }
}
