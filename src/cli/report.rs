//! Plain-text rendering of progress, the pull summary and inspections.

use crate::digest::Digest;
use crate::inspect::Inspection;
use crate::progress::Reporter;
use crate::pull::PullReport;
use std::io::Write;

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
        let state = if cached { "cached" } else { "downloading" };
        eprintln!("{}: {state} ({:.1} MB)", digest.short(), mb(size));
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

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// The end-of-pull summary on stdout.
pub fn summary(r: &PullReport) {
    println!("Image: {}", r.reference);
    println!("Digest: {}", r.digest);
    for (platform, digest) in &r.images {
        if let Some(p) = platform {
            println!("Platform: {p} ({digest})");
        }
    }
    println!(
        "Downloaded: {:.1} MB, cache: {}",
        mb(r.bytes_downloaded),
        r.cache
    );
    println!("{}", r.cache_line());
    if r.served.len() > 1 || r.served.iter().any(|(l, _)| !l.ends_with("(origin)")) {
        let list: Vec<String> = r
            .served
            .iter()
            .map(|(l, n)| format!("{l} ({n} requests)"))
            .collect();
        println!("Served by: {}", list.join(", "));
    }
    println!("Saved to: {}", r.output.display());
    if r.output.extension().is_some_and(|e| e == "tar") {
        println!("Load it with: docker load -i {}", r.output.display());
    }
}

/// `imgpull inspect` as text.
pub fn inspection(out: &mut impl Write, i: &Inspection) -> std::io::Result<()> {
    match i {
        Inspection::Index {
            reference,
            media_type,
            digest,
            size,
            manifests,
            ..
        } => {
            writeln!(out, "Name:       {reference}")?;
            writeln!(out, "MediaType:  {media_type}")?;
            writeln!(out, "Digest:     {digest}")?;
            writeln!(out, "Size:       {size}")?;
            writeln!(out, "Platforms:")?;
            for m in manifests {
                let p = m.platform.as_deref().unwrap_or("(none)");
                let note = if m.image { "" } else { "  (not an image)" };
                writeln!(out, "  {p:<20} {}  {:>8} bytes{note}", m.digest, m.size)?;
            }
        }
        Inspection::Image {
            reference,
            media_type,
            digest,
            size,
            platform,
            layers,
            total_size,
            config,
            ..
        } => {
            writeln!(out, "Name:       {reference}")?;
            writeln!(out, "MediaType:  {media_type}")?;
            writeln!(out, "Digest:     {digest}")?;
            writeln!(out, "Size:       {size}")?;
            if let Some(p) = platform {
                writeln!(out, "Platform:   {p} (from the index)")?;
            }
            let variant = config
                .variant
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            writeln!(
                out,
                "OS/Arch:    {}/{}{variant}",
                config.os, config.architecture
            )?;
            if let Some(c) = &config.created {
                writeln!(out, "Created:    {c}")?;
            }
            if let Some(e) = &config.entrypoint {
                writeln!(out, "Entrypoint: {e:?}")?;
            }
            if let Some(c) = &config.cmd {
                writeln!(out, "Cmd:        {c:?}")?;
            }
            writeln!(
                out,
                "Layers:     {} ({:.1} MB in all)",
                layers.len(),
                mb(*total_size)
            )?;
            for l in layers {
                writeln!(
                    out,
                    "  {}  {:>12} bytes  {}",
                    l.digest, l.size, l.media_type
                )?;
            }
        }
    }
    Ok(())
}
