//! A reader between a layer's decompressed stream and whatever reads its
//! tar, enforcing bounds no small input may break:
//!
//! - every tar header record (GNU long name or link, PAX extended header)
//!   holds at most [`MAX_RECORD`] bytes: the `tar` crate reads such a
//!   record whole into memory, so a 1 MB layer naming a 1 GiB long name
//!   would otherwise take gigabytes of RAM;
//! - the layer yields at most `max_bytes` uncompressed bytes, counting the
//!   zeros a GNU sparse entry expands to (a 1.5 KB layer can otherwise
//!   describe a 4 GiB file) and anything after the tar's end.
//!
//! It follows the tar's structure as the bytes pass (headers, PAX `size`
//! overrides, GNU sparse extension blocks, data and padding) without
//! holding more than one header record, and fails the read that would
//! break a bound, before the bytes reach the tar reader. It must see the
//! structure exactly as the `tar` crate (0.4) reads it — which headers
//! count as extensions (only with ustar or GNU magic), which entry a PAX
//! record describes, how numbers and PAX records parse — or a crafted tar
//! could show it one thing and the reader another; forms that are
//! ambiguous (two PAX headers for one entry) are refused.

use std::io::{self, Read};

/// The most bytes one GNU long name/link or PAX record may hold: Go's
/// `archive/tar` limit, so anything Docker and containerd read, we read.
pub const MAX_RECORD: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("a tar header record (type {kind:?}) of {size} bytes; at most {MAX_RECORD} are read")]
    Record { kind: char, size: u64 },
    #[error("the layer uncompresses to more than {max} bytes (max_layer_uncompressed)")]
    TooBig { max: u64 },
    #[error("invalid tar header: {0}")]
    Header(&'static str),
    #[error(
        "a zstd frame asks for a {requested}-byte window; at most {} are decoded",
        super::MAX_ZSTD_WINDOW
    )]
    ZstdWindow { requested: u64 },
}

impl GuardError {
    /// The guard's error inside an I/O error, if that is what `e` is.
    pub fn find(e: &io::Error) -> Option<&GuardError> {
        e.get_ref()?.downcast_ref::<GuardError>()
    }
}

enum State {
    /// Collecting the next 512-byte header.
    Header(Vec<u8>),
    /// Collecting a GNU sparse extension block (`left` data bytes follow).
    SparseExt(Vec<u8>, u64),
    /// Passing `left` bytes of data and padding; the first `keep` of them
    /// are a PAX record, collected to read its `size`.
    Data {
        left: u64,
        keep: u64,
        pax: Option<Vec<u8>>,
    },
    /// After the end-of-archive block: bytes are only counted.
    End,
}

pub struct TarGuard<R> {
    inner: R,
    state: State,
    /// Follow the tar's structure (off: only count bytes).
    parse: bool,
    /// The PAX record waiting for the entry it describes.
    pax: Option<Vec<u8>>,
    total: u64,
    max_bytes: Option<u64>,
}

impl<R: Read> TarGuard<R> {
    /// Guard a tar stream: records capped, at most `max_bytes` in all.
    pub fn tar(inner: R, max_bytes: Option<u64>) -> TarGuard<R> {
        TarGuard {
            inner,
            state: State::Header(Vec::with_capacity(BLOCK as usize)),
            parse: true,
            pax: None,
            total: 0,
            max_bytes,
        }
    }

    /// Only count: at most `max_bytes` (for layers copied, not read).
    pub fn bytes(inner: R, max_bytes: Option<u64>) -> TarGuard<R> {
        TarGuard {
            parse: false,
            ..TarGuard::tar(inner, max_bytes)
        }
    }

    fn count(&mut self, n: u64) -> Result<(), GuardError> {
        self.total = self.total.saturating_add(n);
        match self.max_bytes {
            Some(max) if self.total > max => Err(GuardError::TooBig { max }),
            _ => Ok(()),
        }
    }

    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), GuardError> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header(buf) | State::SparseExt(buf, _) => {
                    let take = (BLOCK as usize - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buf.len() == BLOCK as usize {
                        let block = std::mem::take(buf);
                        self.state = match std::mem::replace(&mut self.state, State::End) {
                            State::SparseExt(_, left) => self.after_sparse_ext(&block, left),
                            _ => self.after_header(&block)?,
                        };
                    }
                }
                State::Data { left, keep, pax } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    if let Some(rec) = pax {
                        let room = (*keep).saturating_sub(rec.len() as u64) as usize;
                        rec.extend_from_slice(&bytes[..take.min(room)]);
                    }
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        if let Some(rec) = pax.take() {
                            self.pax = Some(rec);
                        }
                        self.state = State::Header(Vec::with_capacity(BLOCK as usize));
                    }
                }
            }
        }
        Ok(())
    }

    /// What follows a header block.
    fn after_header(&mut self, h: &[u8]) -> Result<State, GuardError> {
        if h.iter().all(|b| *b == 0) {
            // The tar reader stops at the first zero block.
            return Ok(State::End);
        }
        let kind = h[156];
        let (magic, version) = (&h[257..263], &h[263..265]);
        let gnu = magic == b"ustar " && version == b" \0";
        let recognized = gnu || (magic == b"ustar\0" && version == b"00");
        // The reader applies a pending PAX size to any entry whose type is
        // not an extension type, whatever its magic.
        let extension_type = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let mut size =
            number(&h[124..136]).ok_or(GuardError::Header("a size field that is not a number"))?;
        if !extension_type {
            if let Some(s) = self.pax.as_deref().and_then(pax_size) {
                size = s;
            }
        }
        // Long names and PAX records are read whole, but only with magic.
        if recognized && matches!(kind, b'L' | b'K' | b'x') {
            if size > MAX_RECORD {
                return Err(GuardError::Record {
                    kind: kind as char,
                    size,
                });
            }
            if kind == b'x' && self.pax.is_some() {
                return Err(GuardError::Header("two PAX headers for one entry"));
            }
            return Ok(self.data(size, kind == b'x'));
        }
        // An entry (a global header and an unrecognized extension are
        // entries too): what was pending described it.
        self.pax = None;
        if kind == b'S' {
            if !gnu {
                return Err(GuardError::Header("a sparse entry without a GNU header"));
            }
            // GNU sparse: the real size is what the reader will produce.
            let real = number(&h[483..495])
                .ok_or(GuardError::Header("a sparse size that is not a number"))?;
            self.count(real.saturating_sub(size))?;
            if h[482] == 1 {
                return Ok(State::SparseExt(Vec::with_capacity(BLOCK as usize), size));
            }
        }
        Ok(self.data(size, false))
    }

    fn after_sparse_ext(&mut self, ext: &[u8], left: u64) -> State {
        if ext[504] == 1 {
            State::SparseExt(Vec::with_capacity(BLOCK as usize), left)
        } else {
            self.data(left, false)
        }
    }

    fn data(&self, size: u64, pax: bool) -> State {
        let padded = size.div_ceil(BLOCK).saturating_mul(BLOCK);
        if padded == 0 {
            return State::Header(Vec::with_capacity(BLOCK as usize));
        }
        State::Data {
            left: padded,
            keep: size,
            pax: pax.then(Vec::new),
        }
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(n as u64).map_err(io::Error::other)?;
        if self.parse {
            self.scan(&buf[..n]).map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

/// A tar numeric field, as the `tar` crate reads it: GNU base-256 when the
/// high bit of the first byte is set (of a 12-byte field, the last 8
/// bytes), else octal text up to the first NUL, whitespace trimmed.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let (first, skip) = match field.len() {
            8 => (u64::from(field[0] ^ 0x80), 1),
            n => (0, n.saturating_sub(8)),
        };
        return Some(
            field
                .iter()
                .skip(skip)
                .fold(first, |n, b| (n << 8) | u64::from(*b)),
        );
    }
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

/// The `size` of a PAX record, as the `tar` crate reads it: lines
/// `LEN key=value` split at `\n`, LEN counting the newline; the first
/// `size` wins; a malformed line before it (or an empty one) ends the
/// search with nothing.
fn pax_size(rec: &[u8]) -> Option<u64> {
    for line in rec.split(|b| *b == b'\n') {
        if line.is_empty() {
            return None;
        }
        let sp = line.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
        if line.len() + 1 != len {
            return None;
        }
        let kv = &line[sp + 1..];
        let eq = kv.iter().position(|b| *b == b'=')?;
        if &kv[..eq] == b"size" {
            return std::str::from_utf8(&kv[eq + 1..]).ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    fn read_all(r: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = r;
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn ordinary_tars_pass_untouched_and_read_back() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(200) + "f";
        for (name, data) in [("a", b"hello".as_slice()), (long.as_str(), b"x")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("path", "p".repeat(300).as_bytes())])
            .unwrap();
        pax.append_data(&mut h, "short", b"abc".as_slice()).unwrap();
        for (tar_bytes, n) in [(b.into_inner().unwrap(), 2), (pax.into_inner().unwrap(), 1)] {
            let out = read_all(TarGuard::tar(tar_bytes.as_slice(), None)).unwrap();
            assert_eq!(out, tar_bytes);
            let mut ar = tar::Archive::new(TarGuard::tar(tar_bytes.as_slice(), None));
            let names: Vec<_> = ar
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().into_owned())
                .collect();
            assert_eq!(names.len(), n, "{names:?}");
        }
    }

    #[test]
    fn huge_records_are_refused_before_they_are_read() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let mut raw = header(kind, "././@LongLink", 1 << 30).as_bytes().to_vec();
            raw.extend(vec![b'a'; 4096]);
            let e = read_all(TarGuard::tar(raw.as_slice(), None)).unwrap_err();
            assert!(
                matches!(GuardError::find(&e), Some(GuardError::Record { .. })),
                "{e}"
            );
        }
    }

    #[test]
    fn pax_sizes_are_followed_and_totals_bounded() {
        // A PAX record giving the next entry a size of 1024 data bytes.
        let rec = b"13 size=1024\n".to_vec();
        let mut raw = header(tar::EntryType::XHeader, "pax", rec.len() as u64)
            .as_bytes()
            .to_vec();
        raw.extend(&rec);
        raw.resize(1024, 0);
        raw.extend(header(tar::EntryType::Regular, "f", 0).as_bytes());
        raw.extend(vec![b'z'; 1024]);
        // Were the PAX size ignored, these bytes would be taken for a
        // header with a garbage size field.
        raw.extend(header(tar::EntryType::Regular, "g", 1).as_bytes());
        raw.extend(vec![b'q'; 512]);
        raw.extend(vec![0u8; 1024]);
        assert_eq!(read_all(TarGuard::tar(raw.as_slice(), None)).unwrap(), raw);
        let e = read_all(TarGuard::tar(raw.as_slice(), Some(2000))).unwrap_err();
        assert!(matches!(
            GuardError::find(&e),
            Some(GuardError::TooBig { .. })
        ));
        let e = read_all(TarGuard::bytes(raw.as_slice(), Some(2000))).unwrap_err();
        assert!(matches!(
            GuardError::find(&e),
            Some(GuardError::TooBig { .. })
        ));
    }

    #[test]
    fn sparse_expansion_counts() {
        let mut h = header(tar::EntryType::GNUSparse, "sparse", 512);
        // realsize: 4 GiB in octal.
        h.as_mut_bytes()[483..495].copy_from_slice(b"40000000000\0");
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend(vec![b's'; 512]);
        raw.extend(vec![0u8; 1024]);
        let e = read_all(TarGuard::tar(raw.as_slice(), Some(1 << 30))).unwrap_err();
        assert!(matches!(
            GuardError::find(&e),
            Some(GuardError::TooBig { .. })
        ));
        assert!(read_all(TarGuard::tar(raw.as_slice(), None)).is_ok());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"00000001750\0"), Some(1000));
        assert_eq!(number(b"      1750 \0"), Some(1000));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        // Base-256 in a 12-byte field: only the last 8 bytes count.
        assert_eq!(
            number(&[0x80, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
        assert_eq!(number(b"12\0 34      "), Some(10));
        assert_eq!(number(b"9"), None);
        assert_eq!(pax_size(b"13 size=1024\n"), Some(1024));
        assert_eq!(pax_size(b"11 size=512"), None, "no newline: not a record");
        assert_eq!(
            pax_size(b"5 a=bcde\n13 size=1024\n"),
            None,
            "a malformed line ends it"
        );
        assert_eq!(pax_size(b"9 a=bcde\n13 size=1024\n"), Some(1024));
    }
}
