//! A tar output whose layout is fixed before its blobs arrive: every
//! entry's size is known from the manifests, so every header and every
//! blob has its offset from the start. Blobs are written into their places
//! while they download ([`crate::transfer::tee::TeeWriter`]), and [`LiveOutput::finish`]
//! only copies the ones that did not come that way (cached, resumed) —
//! a cold pull writes its output in the same pass as its cache, instead of
//! copying every byte again once the last layer is verified.
//!
//! The file is created under a hidden temporary name beside the
//! destination, sized in advance (the padding and the end-of-archive
//! blocks are the file's zeros), and renamed into place only by `finish`;
//! dropped unfinished, it is removed.

use super::live::{LiveOutput, SlotId};
use super::tar_out::header;
use super::temp::file_beside as temp_beside;
use super::{Destination, Entry, ExportContext, ExportError};
use crate::cache::BlobSource;
use crate::oci::digest::Digest;
use async_trait::async_trait;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const BLOCK: u64 = 512;

/// Where one blob's bytes go.
struct Slot {
    digest: Digest,
    offset: u64,
    size: u64,
    /// Every byte was written here and the cache verified them.
    filled: AtomicBool,
}

pub struct PlacedTar {
    /// Taken by `finish`; dropped unfinished, it removes the file.
    tmp: Mutex<Option<tempfile::NamedTempFile>>,
    path: PathBuf,
    file: File,
    slots: Vec<Slot>,
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

impl PlacedTar {
    /// Lay out `dirs` then `entries`; an [`Entry::File`] is a blob whose
    /// digest `digest_of(name)` gives. Headers and generated entries are
    /// written now. `Ok(None)` when an entry cannot be placed (a name a
    /// plain ustar header cannot hold, a file that is not a blob).
    pub fn create(
        dest: &Path,
        dirs: &[&str],
        entries: &[Entry],
        digest_of: &dyn Fn(&str) -> Option<Digest>,
    ) -> Result<Option<PlacedTar>, ExportError> {
        let mut headers = Vec::new();
        let mut bytes = Vec::new();
        let mut slots = Vec::new();
        let mut pos = 0u64;
        for d in dirs {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            if h.set_path(d).is_err() {
                return Ok(None);
            }
            h.set_cksum();
            headers.push((pos, h));
            pos += BLOCK;
        }
        for e in entries {
            let size = match e {
                Entry::File { size, .. } => *size,
                Entry::Bytes { data, .. } => data.len() as u64,
            };
            let mut h = header(tar::EntryType::Regular, size, 0o644);
            if h.set_path(e.name()).is_err() {
                return Ok(None);
            }
            h.set_cksum();
            headers.push((pos, h));
            let data_at = pos + BLOCK;
            match e {
                Entry::File { name, .. } => match digest_of(name) {
                    Some(digest) => slots.push(Slot {
                        digest,
                        offset: data_at,
                        size,
                        filled: AtomicBool::new(false),
                    }),
                    None => return Ok(None),
                },
                Entry::Bytes { data, .. } => bytes.push((data_at, data)),
            }
            pos = data_at + padded(size);
        }
        // The end of the archive: two zero blocks.
        let total = pos + 2 * BLOCK;
        let tmp = temp_beside(dest)?;
        let path = tmp.path().to_path_buf();
        let io = |e| ExportError::io(&path, e);
        let file = tmp.as_file().try_clone().map_err(io)?;
        file.set_len(total).map_err(io)?;
        for (at, h) in &headers {
            file.write_all_at(h.as_bytes(), *at).map_err(io)?;
        }
        for (at, data) in bytes {
            file.write_all_at(data, at).map_err(io)?;
        }
        Ok(Some(PlacedTar {
            tmp: Mutex::new(Some(tmp)),
            path,
            file,
            slots,
        }))
    }

    /// The temporary file and a handle on it, for the last step (once).
    fn take(&self) -> Result<(tempfile::NamedTempFile, File), ExportError> {
        let tmp = self.tmp.lock().unwrap_or_else(|e| e.into_inner()).take();
        let tmp =
            tmp.ok_or_else(|| ExportError::Invalid("the output was finished already".into()))?;
        let file = self
            .file
            .try_clone()
            .map_err(|e| ExportError::io(&self.path, e))?;
        Ok((tmp, file))
    }
}

#[async_trait]
impl LiveOutput for PlacedTar {
    fn path(&self) -> &Path {
        &self.path
    }

    fn slot(&self, digest: &Digest) -> Option<SlotId> {
        self.slots
            .iter()
            .position(|s| s.digest == *digest)
            .map(SlotId)
    }

    fn write_at(&self, slot: SlotId, at: u64, data: &[u8]) -> std::io::Result<()> {
        let s = &self.slots[slot.0];
        if at + data.len() as u64 > s.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: more than {} bytes", s.digest, s.size),
            ));
        }
        self.file.write_all_at(data, s.offset + at)
    }

    fn mark_filled(&self, slot: SlotId) {
        self.slots[slot.0].filled.store(true, Ordering::Release);
    }

    /// See [`crate::util::fs::start_writeback`].
    fn start_writeback(&self) {
        crate::util::fs::start_output_writeback(&self.file);
    }

    /// The temporary file goes now, even while a thread still holds this
    /// output: nothing that looks like output is left.
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Copy in the blobs that were not filled while downloading, sync it
    /// if `sync_output` asks (see [`crate::util::fs::sync_output`]) and
    /// rename it to `dest`.
    async fn finish(
        &self,
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(usize, usize), ExportError> {
        let cache = cx.cache;
        let mut copies = Vec::new();
        for s in self
            .slots
            .iter()
            .filter(|s| !s.filled.load(Ordering::Acquire))
        {
            copies.push((cache.source(&s.digest).await?, s.offset, s.size));
        }
        let counts = (self.slots.len() - copies.len(), copies.len());
        let dest = dest.path()?.to_path_buf();
        let parts = self.take()?;
        tokio::task::spawn_blocking(move || complete(parts, copies, &dest))
            .await
            .map_err(|e| ExportError::Invalid(format!("export task failed: {e}")))??;
        Ok(counts)
    }
}

/// Copy `copies` (source, offset, size) into the temporary file, then
/// give it its name.
fn complete(
    (tmp, file): (tempfile::NamedTempFile, File),
    copies: Vec<(BlobSource, u64, u64)>,
    dest: &Path,
) -> Result<(), ExportError> {
    let path = tmp.path().to_path_buf();
    for (src, offset, size) in copies {
        if crate::util::cancel::requested() {
            return Err(ExportError::Invalid("interrupted".into()));
        }
        let len = src.size().map_err(|e| ExportError::io(src.name(), e))?;
        if len != size {
            return Err(ExportError::Invalid(format!(
                "{} is {len} bytes, expected {size} (a damaged cache? run `imgpull cache verify --repair`)",
                src.name().display()
            )));
        }
        // A blob that cannot be opened is named; a failed copy names the output.
        let unreadable = |e| ExportError::io(src.name(), e);
        let copied = match &src {
            BlobSource::File(p) => {
                copy_range(&File::open(p).map_err(unreadable)?, &file, offset, size)
            }
            BlobSource::Reader { .. } => {
                copy_reader(src.open().map_err(unreadable)?, &file, offset, size)
            }
        };
        copied.map_err(|e| ExportError::io(&path, e))?;
        // The disk starts on this blob while the next one is copied.
        crate::util::fs::start_output_writeback(&file);
    }
    crate::util::fs::sync_output(&file).map_err(|e| ExportError::io(&path, e))?;
    crate::util::fs::set_readable(&path).map_err(|e| ExportError::io(&path, e))?;
    tmp.persist(dest)
        .map_err(|e| ExportError::io(dest, e.error))?;
    crate::util::fs::sync_output_dir(&super::parent_dir(dest));
    Ok(())
}

/// Copy all of `src` to `dst` at `at`: in the kernel (`copy_file_range`)
/// where it can, else through a buffer.
fn copy_range(src: &File, dst: &File, at: u64, size: u64) -> std::io::Result<()> {
    let mut done = 0u64;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        while done < size {
            let mut off_in = done as libc::loff_t;
            let mut off_out = (at + done) as libc::loff_t;
            let want = (size - done).min(1 << 30) as usize;
            // SAFETY: two valid open fds and offsets we own; the kernel
            // copies between them and advances the offsets.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    want,
                    0,
                )
            };
            if n <= 0 {
                break; // not supported here, or EOF: the buffer below
            }
            done += n as u64;
        }
    }
    buffered(|b, off| src.read_at(b, off), dst, at, done, size)
}

/// Write `size` bytes read from `src` into `dst` at `at` (a blob from a
/// backend without local files).
fn copy_reader(mut src: impl std::io::Read, dst: &File, at: u64, size: u64) -> std::io::Result<()> {
    buffered(|b, _| src.read(b), dst, at, 0, size)
}

/// Copy bytes `done..size` through a buffer: `read(buf, offset)` fills
/// from the source, each piece is written to `dst` at `at + offset`.
fn buffered(
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
    dst: &File,
    at: u64,
    mut done: u64,
    size: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let n = read(&mut buf[..want], done)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("copied {done} of {size} bytes"),
            ));
        }
        dst.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_a_streamed_tar_and_places_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let blob = b"0123456789".repeat(100);
        let digest = Digest::of(&blob);
        let name = crate::export::blob_name(&digest);
        let entries = vec![
            Entry::File {
                name: name.clone(),
                size: blob.len() as u64,
                source: BlobSource::File("unused".into()),
            },
            Entry::Bytes {
                name: "manifest.json".into(),
                data: b"[]".to_vec(),
            },
        ];
        let dest = dir.path().join("out.tar");
        let placed = PlacedTar::create(&dest, &["blobs/"], &entries, &|n| {
            (n == name).then(|| digest.clone())
        })
        .unwrap()
        .expect("every entry has a place");
        let slot = placed.slot(&digest).unwrap();
        assert!(placed.slot(&Digest::of(b"other")).is_none());
        // Never past the blob's place.
        assert!(placed.write_at(slot, 1, &blob).is_err());
        placed.write_at(slot, 0, &blob[..300]).unwrap();
        placed.write_at(slot, 300, &blob[300..]).unwrap();
        placed.mark_filled(slot);
        let tmp = placed.path().to_path_buf();
        complete(placed.take().unwrap(), Vec::new(), &dest).unwrap();
        assert!(!tmp.exists());
        // The tar crate reads back exactly what was placed.
        let mut ar = tar::Archive::new(std::fs::File::open(&dest).unwrap());
        let got: Vec<(String, Vec<u8>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), data)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("blobs/".to_string(), Vec::new()),
                (name, blob.clone()),
                ("manifest.json".to_string(), b"[]".to_vec()),
            ]
        );
    }

    #[test]
    fn byte_for_byte_the_tar_that_write_tar_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        let mut blobs = Vec::new();
        for (i, len) in [0usize, 1, 511, 512, 513, 70_000].into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            let path = dir.path().join(format!("blob{i}"));
            std::fs::write(&path, &data).unwrap();
            let d = Digest::of(&data);
            entries.push(Entry::File {
                name: crate::export::blob_name(&d),
                size: len as u64,
                source: BlobSource::File(path.clone()),
            });
            blobs.push((d, path));
        }
        entries.push(Entry::Bytes {
            name: "index.json".into(),
            data: b"{}".to_vec(),
        });
        let dirs = ["blobs/", "blobs/sha256/"];
        let streamed = dir.path().join("streamed.tar");
        crate::export::tar_out::write_tar(&dirs, &entries, &streamed).unwrap();
        let placed_at = dir.path().join("placed.tar");
        let by_name = |n: &str| {
            blobs
                .iter()
                .find(|(d, _)| crate::export::blob_name(d) == n)
                .map(|(d, _)| d.clone())
        };
        let placed = PlacedTar::create(&placed_at, &dirs, &entries, &by_name)
            .unwrap()
            .unwrap();
        // Half filled as if downloaded, half copied at the end.
        let mut copies = Vec::new();
        for (i, (d, path)) in blobs.iter().enumerate() {
            let slot = placed.slot(d).unwrap();
            let s = &placed.slots[slot.0];
            if i % 2 == 0 {
                placed
                    .write_at(slot, 0, &std::fs::read(path).unwrap())
                    .unwrap();
                placed.mark_filled(slot);
            } else {
                copies.push((BlobSource::File(path.clone()), s.offset, s.size));
            }
        }
        complete(placed.take().unwrap(), copies, &placed_at).unwrap();
        assert_eq!(
            std::fs::read(&streamed).unwrap(),
            std::fs::read(&placed_at).unwrap()
        );
    }

    #[test]
    fn dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let entries = vec![Entry::Bytes {
            name: "x".into(),
            data: b"y".to_vec(),
        }];
        let placed = PlacedTar::create(&dest, &[], &entries, &|_| None)
            .unwrap()
            .unwrap();
        drop(placed);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
