//! Content digests (`sha256:<hex>`): parsing, display and a streaming verifier.
//!
//! Every manifest and blob that crosses the network is checked against the
//! digest that named it; [`Verifier`] is the one place bytes are hashed.

use std::fmt;
use std::str::FromStr;

/// A validated content digest: `sha256` (what registries use) or `sha512`
/// (which the OCI image spec also registers); both are verified.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {reason}")]
pub struct DigestParseError {
    pub input: String,
    pub reason: &'static str,
}

impl Digest {
    /// The digest of `bytes` (sha256).
    pub fn of(bytes: &[u8]) -> Digest {
        let mut v = Verifier::sha256();
        v.update(bytes);
        v.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lowercase hex, safe to use as a file name (validated at parse time).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as docker shows short ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.name()
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DigestParseError {
            input: s.to_string(),
            reason,
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| err("missing ':'"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(err("unsupported algorithm (sha256 and sha512 are)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(err("wrong length for its algorithm"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("not lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The digest of `bytes` in `like`'s algorithm.
pub fn digest_like(bytes: &[u8], like: &Digest) -> Digest {
    let mut v = Verifier::of(like.algorithm);
    v.update(bytes);
    v.finish()
}

/// Hashes bytes as they stream past and counts them.
///
/// SHA-256 comes from `ring` (already linked by rustls): on these machines
/// (no SHA-NI) it hashes ~1.8x faster than the pure-Rust `sha2`
/// (see MEASUREMENTS.md), and a pull is bound by hashing.
#[derive(Clone)]
pub struct Verifier {
    hasher: ring::digest::Context,
    algorithm: Algorithm,
    len: u64,
}

impl Verifier {
    pub fn sha256() -> Verifier {
        Verifier::of(Algorithm::Sha256)
    }

    pub fn of(algorithm: Algorithm) -> Verifier {
        let alg = match algorithm {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        };
        Verifier {
            hasher: ring::digest::Context::new(alg),
            algorithm,
            len: 0,
        }
    }

    /// A verifier for `expected`'s algorithm (`None` would be one we
    /// cannot compute: then the content must be refused, not trusted).
    pub fn new(expected: &Digest) -> Option<Verifier> {
        Some(Verifier::of(expected.algorithm))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Hash everything `r` yields (a file read back from disk).
    pub fn update_from(&mut self, r: &mut impl std::io::Read) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        let out = self.hasher.finish();
        let mut hex = String::with_capacity(self.algorithm.hex_len());
        for b in out.as_ref() {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest {
            algorithm: self.algorithm,
            hex,
        }
    }
}

/// The digest of a file's content, in `like`'s algorithm (`None` when
/// that algorithm cannot be computed).
pub fn hash_file(path: &std::path::Path, like: &Digest) -> std::io::Result<Option<Digest>> {
    hash_reader(&mut std::fs::File::open(path)?, like)
}

/// The digest of everything `r` yields, in `like`'s algorithm (`None`
/// when that algorithm cannot be computed).
pub fn hash_reader(r: &mut impl std::io::Read, like: &Digest) -> std::io::Result<Option<Digest>> {
    let Some(mut v) = Verifier::new(like) else {
        return Ok(None);
    };
    v.update_from(r)?;
    Ok(Some(v.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha512_is_verified() {
        let d = Verifier::of(Algorithm::Sha512);
        let empty = d.finish();
        assert_eq!(empty.algorithm(), Algorithm::Sha512);
        assert!(empty.to_string().starts_with("sha512:cf83e1357eefb8bd"));
        let parsed: Digest = empty.to_string().parse().unwrap();
        assert_eq!(digest_like(b"", &parsed), parsed);
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} accepted");
        }
    }
}
