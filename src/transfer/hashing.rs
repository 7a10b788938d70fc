//! A blob being hashed on a thread of its own and written (to a [`Sink`]:
//! the cache's partial file, or its place in an output) on another, so a
//! download receives its next bytes while the last ones are hashed, and
//! the hashing never waits on a write: on a machine without SHA
//! instructions hashing is the bottleneck, and anything else on its thread
//! (or inline in the download) leaves the network idle meanwhile.
//!
//! Bytes reach the thread through a [`Gather`]; at most [`DEPTH`] pieces
//! wait for each thread (the memory a download may hold).
//! [`HashingWriter::settle`] waits until everything accepted is written and
//! hashed.

use crate::oci::digest::Verifier;
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io::{BufWriter, Write};
use tokio::sync::{mpsc, oneshot};

/// Where a [`HashingWriter`]'s bytes go: a file (the cache's partial), or a
/// blob's place in an output.
pub trait Sink: Send + 'static {
    /// Append `data`.
    fn put(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// Push out anything buffered.
    fn complete(&mut self) -> std::io::Result<()>;
    /// Forget everything put so far (the next byte is byte 0 again).
    fn clear(&mut self) -> std::io::Result<()>;
    /// Start writing back what is written (see `util::fs::start_writeback`).
    fn start_writeback(&mut self);
}

impl Sink for BufWriter<File> {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.write_all(data)
    }

    fn complete(&mut self) -> std::io::Result<()> {
        Write::flush(self)
    }

    fn clear(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        Write::flush(self)?;
        self.get_mut().set_len(0)?;
        self.get_mut().seek(SeekFrom::Start(0))?;
        Ok(())
    }

    fn start_writeback(&mut self) {
        if Write::flush(self).is_ok() {
            crate::util::fs::start_writeback(self.get_ref());
        }
    }
}

/// Small chunks are gathered into pieces of this size for a thread.
const PIECE: usize = 256 * 1024;
/// A chunk this big goes to a thread by itself, without a copy.
const DIRECT: usize = 64 * 1024;

/// Bytes on their way to a thread: small chunks gathered into [`PIECE`]s
/// (one hand-off per piece, not per chunk), a chunk of [`DIRECT`] bytes or
/// more passed on as it is (shared, not copied).
#[derive(Default)]
pub struct Gather {
    pending: BytesMut,
}

impl Gather {
    /// Take `chunk`; what is ready to hand on, in order (the bytes
    /// gathered before it come first).
    pub fn push(&mut self, chunk: Bytes) -> [Option<Bytes>; 2] {
        if chunk.len() >= DIRECT {
            return [self.take(), Some(chunk)];
        }
        self.pending.extend_from_slice(&chunk);
        match self.pending.len() >= PIECE {
            true => [self.take(), None],
            false => [None, None],
        }
    }

    /// Whatever is gathered.
    pub fn take(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }

    /// Bytes gathered and not yet handed on.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Pieces that may wait for the thread.
const DEPTH: usize = 4;

type Parts<S> = (S, Verifier);

enum State<S> {
    Idle(Box<Parts<S>>),
    Busy {
        tx: mpsc::Sender<Bytes>,
        done: oneshot::Receiver<std::io::Result<Parts<S>>>,
    },
    /// The thread failed; its error was returned once.
    Failed,
}

pub struct HashingWriter<S: Sink = BufWriter<File>> {
    state: State<S>,
    gather: Gather,
    held: u64,
    /// A file whose lock must outlive every write (dup'ed into the thread).
    keep: Option<File>,
    /// Start writing back to disk as bytes arrive, so the fsync at the end
    /// has little left to wait for.
    early_writeback: bool,
}

impl<S: Sink> HashingWriter<S> {
    /// `verifier` has hashed what `file` already holds; `keep` (a locked
    /// file) stays open in the thread while it writes.
    pub fn new(
        file: S,
        verifier: Verifier,
        keep: Option<File>,
        early_writeback: bool,
    ) -> HashingWriter<S> {
        HashingWriter {
            held: verifier.len(),
            state: State::Idle(Box::new((file, verifier))),
            gather: Gather::default(),
            keep,
            early_writeback,
        }
    }

    /// Bytes accepted so far (written or on their way).
    pub fn held(&self) -> u64 {
        self.held
    }

    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.held += chunk.len() as u64;
        for piece in self.gather.push(chunk).into_iter().flatten() {
            self.send(piece).await?;
        }
        Ok(())
    }

    async fn send(&mut self, piece: Bytes) -> std::io::Result<()> {
        if let State::Idle(_) = self.state {
            let State::Idle(parts) = std::mem::replace(&mut self.state, State::Failed) else {
                unreachable!("checked above")
            };
            let keep = match &self.keep {
                Some(f) => Some(f.try_clone()?),
                None => None,
            };
            let (tx, rx) = mpsc::channel(DEPTH);
            let writeback = self.early_writeback;
            let (done_tx, done) = oneshot::channel();
            std::thread::Builder::new()
                .name("imgpull-hash".into())
                .spawn(move || {
                    let r = run(*parts, rx, writeback);
                    // If nobody waits (the writer was dropped), the file is
                    // flushed and closed here, before the lock goes.
                    drop(done_tx.send(r));
                    drop(keep);
                })?;
            self.state = State::Busy { tx, done };
        }
        let failed = match &self.state {
            State::Busy { tx, .. } => tx.send(piece).await.is_err(),
            State::Failed => return Err(std::io::Error::other("an earlier write failed")),
            State::Idle(_) => unreachable!("started above"),
        };
        if failed {
            // The thread stopped at an error: report it.
            self.settle().await?;
        }
        Ok(())
    }

    /// Wait until every accepted byte is written and hashed; the file and
    /// verifier are then at hand.
    pub async fn settle(&mut self) -> std::io::Result<&mut Parts<S>> {
        if let Some(piece) = self.gather.take() {
            if let State::Idle(parts) = &mut self.state {
                parts.1.update(&piece);
                parts.0.put(&piece)?;
            } else {
                Box::pin(self.send(piece)).await?;
            }
        }
        if let State::Busy { .. } = self.state {
            let State::Busy { tx, done } = std::mem::replace(&mut self.state, State::Failed) else {
                unreachable!("checked above")
            };
            drop(tx);
            let parts = done
                .await
                .map_err(|_| std::io::Error::other("the hashing thread ended early"))??;
            self.state = State::Idle(Box::new(parts));
        }
        match &mut self.state {
            State::Idle(parts) => Ok(parts),
            _ => Err(std::io::Error::other("an earlier write failed")),
        }
    }

    /// Settle and hand back the file and verifier.
    pub async fn into_parts(mut self) -> std::io::Result<Parts<S>> {
        self.settle().await?;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Idle(parts) => Ok(*parts),
            _ => unreachable!("settled"),
        }
    }

    /// Drop what is held and start over from byte 0 with `fresh`.
    pub async fn restart(&mut self, fresh: Verifier) -> std::io::Result<()> {
        self.gather.clear();
        let parts = self.settle().await?;
        parts.0.clear()?;
        parts.1 = fresh;
        self.held = 0;
        Ok(())
    }
}

/// Bytes between two early writeback requests.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// The thread's work: hash each piece, then hand it to a writer thread of
/// its own, so the hashing (the bottleneck) never waits on a write.
fn run<S: Sink>(
    parts: Parts<S>,
    mut rx: mpsc::Receiver<Bytes>,
    writeback: bool,
) -> std::io::Result<Parts<S>> {
    let (mut file, mut verifier) = parts;
    let (to_writer, pieces) = std::sync::mpsc::sync_channel::<Bytes>(DEPTH);
    let writer = std::thread::Builder::new()
        .name("imgpull-write".into())
        .spawn(move || -> std::io::Result<S> {
            let mut unsynced = 0u64;
            for piece in pieces {
                file.put(&piece)?;
                unsynced += piece.len() as u64;
                if writeback && unsynced >= WRITEBACK_EVERY {
                    file.start_writeback();
                    unsynced = 0;
                }
            }
            file.complete()?;
            Ok(file)
        })?;
    while let Some(piece) = rx.blocking_recv() {
        verifier.update(&piece);
        if to_writer.send(piece).is_err() {
            break; // the writer failed: its error is below
        }
    }
    drop(to_writer);
    let file = writer
        .join()
        .map_err(|_| std::io::Error::other("the writing thread panicked"))??;
    Ok((file, verifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_and_hashes_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = BufWriter::new(File::create(&path).unwrap());
        let mut h = HashingWriter::new(file, Verifier::sha256(), None, true);
        let mut all = Vec::new();
        for i in 0..2000u32 {
            // Mostly small chunks (gathered), now and then one that goes
            // to the thread by itself: the order must hold across both.
            let len = if i % 97 == 0 {
                DIRECT as u32 + i
            } else {
                (i % 700) * 3
            };
            let chunk: Vec<u8> = (0..len).map(|j| (i ^ j) as u8).collect();
            all.extend_from_slice(&chunk);
            h.write(chunk.into()).await.unwrap();
            if i == 1000 {
                assert_eq!(h.settle().await.unwrap().1.len(), all.len() as u64);
            }
        }
        assert_eq!(h.held(), all.len() as u64);
        let (mut f, v) = h.into_parts().await.unwrap();
        f.flush().unwrap();
        assert_eq!(v.finish(), crate::oci::digest::Digest::of(&all));
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }

    #[tokio::test]
    async fn restart_forgets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = BufWriter::new(File::create(&path).unwrap());
        let mut h = HashingWriter::new(file, Verifier::sha256(), None, true);
        h.write(vec![7u8; 600_000].into()).await.unwrap();
        h.restart(Verifier::sha256()).await.unwrap();
        h.write(Bytes::from_static(b"fresh")).await.unwrap();
        let (mut f, v) = h.into_parts().await.unwrap();
        f.flush().unwrap();
        assert_eq!(v.finish(), crate::oci::digest::Digest::of(b"fresh"));
        assert_eq!(std::fs::read(&path).unwrap(), b"fresh");
    }
}
