//! The ends a program holds on a running pipeline: a [`Feed`] that sends input bytes, a
//! [`Collect`] that receives output fragments, and a [`Tap`]: code of its own run as a
//! stage on the fragments between a mux and its sinks.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::model::{Chunk, Fragment};
use crate::stages::Outputs;

/// The pipeline no longer takes what was sent: its input has ended (`stop` was cancelled,
/// or a stage failed: [`Pipeline::run`](super::Pipeline::run) says which), or every stage
/// after a tap has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline has stopped (its run's result says why)")]
pub struct Stopped;

/// Sends input bytes into a pipeline's source, in order (see
/// [`Pipeline::feed_input`](super::Pipeline::feed_input)). The input ends at
/// [`finish`](Feed::finish), or when the `Feed` is dropped.
pub struct Feed {
    tx: mpsc::Sender<Chunk>,
    offset: u64,
}

impl Feed {
    /// A feed and the receiver its source stage reads.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Chunk>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Feed { tx, offset: 0 }, rx)
    }

    /// Sends the next bytes of the input; waits while the pipeline is busy (its channels
    /// hold one or two items: collect the output at the same time, from another task or a
    /// `tokio::select!`).
    ///
    /// Cancel safe: if the future is dropped before it completes, nothing was sent, and
    /// the same bytes may be sent again.
    pub async fn send(&mut self, data: Bytes) -> Result<(), Stopped> {
        // The slot is taken first and the chunk moved in at once, so that a cancelled
        // send loses no bytes.
        let permit = self.tx.reserve().await.map_err(|_| Stopped)?;
        let len = data.len() as u64;
        permit.send(Chunk { offset: self.offset, data });
        self.offset += len;
        Ok(())
    }

    /// How many bytes were sent.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Ends the input: the stages drain and the outputs are finished.
    pub fn finish(self) {}
}

/// Receives a pipeline's output fragments (see
/// [`Pipeline::collect_output`](super::Pipeline::collect_output)). A fragment goes to
/// [`Fragment::offset`] in the output; [`FragmentKind::Finalize`](crate::FragmentKind)
/// fragments, at the end, rewrite earlier bytes.
pub struct Collect {
    rx: mpsc::Receiver<Fragment>,
}

impl Collect {
    /// A collect and the sender its sink stage writes to.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Sender<Fragment>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Collect { rx }, tx)
    }

    /// The next fragment; `None` once the run has ended (cleanly or not: see
    /// [`Pipeline::run`](super::Pipeline::run)'s result). Cancel safe.
    pub async fn recv(&mut self) -> Option<Fragment> {
        self.rx.recv().await
    }
}

/// Where a [`Tap`] sends the fragments it passes on.
pub struct TapOutput {
    out: Outputs<Fragment>,
}

impl TapOutput {
    /// Sends `fragment` to every stage after the tap, waiting while one of them is busy.
    pub async fn send(&self, fragment: Fragment) -> Result<(), Stopped> {
        self.out.send(fragment).await.map_err(|_| Stopped)
    }
}

type TapFuture = Pin<Box<dyn Future<Output = crate::Result<()>> + Send>>;

/// A stage written by the program embedding livemux: it takes the output fragments of a
/// mux (or of another tap) and passes them on to the stages after it (see
/// [`Pipeline::insert_after`](super::Pipeline::insert_after)). Every fragment it does not
/// send on is missing from the outputs.
///
/// The stage ends when its function returns: `Ok` once the input is over (its
/// [`Collect`] gives `None`), or an error, which stops the run and is what
/// [`Pipeline::run`](super::Pipeline::run) returns. A panic is an error too
/// ([`ErrorKind::Internal`](crate::ErrorKind::Internal)).
pub struct Tap {
    run: Box<dyn FnOnce(Collect, TapOutput) -> TapFuture + Send>,
}

impl Tap {
    /// A tap running `f` on the fragments it receives.
    ///
    /// ```
    /// use livemux::pipeline::Tap;
    /// // Passes every fragment on, counting bytes.
    /// let tap = Tap::new(|mut input, output| async move {
    ///     let mut bytes = 0;
    ///     while let Some(f) = input.recv().await {
    ///         bytes += f.len();
    ///         if output.send(f).await.is_err() {
    ///             break;
    ///         }
    ///     }
    ///     let _ = bytes;
    ///     Ok(())
    /// });
    /// # drop(tap);
    /// ```
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: FnOnce(Collect, TapOutput) -> Fut + Send + 'static,
        Fut: Future<Output = crate::Result<()>> + Send + 'static,
    {
        Tap { run: Box::new(move |input, output| Box::pin(f(input, output))) }
    }

    /// The stage's task: `f` over the stage's channels.
    pub(crate) fn start(self, input: mpsc::Receiver<Fragment>, out: Outputs<Fragment>) -> TapFuture {
        (self.run)(Collect { rx: input }, TapOutput { out })
    }
}
