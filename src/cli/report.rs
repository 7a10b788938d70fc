//! Plain-text rendering of progress and the final summary.

use crate::digest::Digest;
use crate::progress::Reporter;
use crate::pull::PullReport;

/// One line per blob event on stderr; no escapes, fit for CI logs.
pub struct Plain {
    verbose: bool,
}

impl Plain {
    pub fn new(verbose: bool) -> Plain {
        Plain { verbose }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

impl Reporter for Plain {
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        if cached {
            eprintln!("{}: cached ({:.1} MB)", digest.short(), mb(size));
        } else {
            eprintln!("{}: downloading ({:.1} MB)", digest.short(), mb(size));
        }
    }

    fn blob_done(&self, digest: &Digest) {
        if self.verbose {
            eprintln!("{}: verified", digest.short());
        }
    }

    fn info(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }
}

/// The end-of-pull summary on stdout.
pub fn summary(r: &PullReport) {
    println!("Image: {}", r.reference);
    println!("Digest: {}", r.manifest_digest);
    if let Some(p) = &r.platform {
        println!("Platform: {p}");
    }
    println!(
        "Downloaded: {:.1} MB, cache: {}",
        mb(r.bytes_downloaded),
        r.cache
    );
    println!("{}", r.cache_line());
    println!("Saved to: {}", r.output.display());
    println!("Load it with: docker load -i {}", r.output.display());
}
