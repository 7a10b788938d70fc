//! Plain-text rendering of progress, the pull summary and inspections.

use super::progress::mb;
use crate::engine::inspect::Inspection;
use crate::engine::pull::PullReport;
use std::io::Write;

/// What to do with the output next, by format.
fn next_step(format: &str, output: &std::path::Path, tag: Option<String>) -> Option<String> {
    let p = output.display();
    match format {
        "docker-archive" => Some(format!("docker load -i {p}   (or: podman load -i {p})")),
        "oci-archive" => Some(format!(
            "podman load -i {p}   (or: skopeo copy oci-archive:{p} …)"
        )),
        "oci" => Some(format!(
            "skopeo copy oci:{p}:{} docker-daemon:…   (or: umoci unpack --image {p}:{} DIR)",
            tag.clone().unwrap_or_else(|| "TAG".into()),
            tag.unwrap_or_else(|| "TAG".into())
        )),
        "registry" => Some(format!(
            "docker pull {}",
            p.to_string().trim_start_matches("docker://")
        )),
        _ => None,
    }
}

/// `println!`, fit for a terminal (platforms come from the registry).
macro_rules! println {
    ($($arg:tt)*) => {
        std::println!("{}", crate::util::text::terminal_safe(&format!($($arg)*)))
    };
}

/// One image pushed, on stdout.
pub fn pushed(r: &crate::progress::PushReport) {
    println!(
        "Pushed: {} ({})",
        r.destination,
        r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default()
    );
    println!(
        "Blobs: {} uploaded ({:.1} MB), {} already there, {} mounted",
        r.uploaded,
        mb(r.bytes_uploaded),
        r.present,
        r.mounted
    );
}

/// The end-of-pull summary on stdout.
pub fn summary(r: &PullReport, format: &str, elapsed: std::time::Duration) {
    println!("Image: {}", r.reference);
    println!("Digest: {}", r.digest);
    for (platform, digest) in &r.images {
        if let Some(p) = platform {
            println!("Platform: {p} ({digest})");
        }
    }
    let there = match r.at_destination {
        0 => String::new(),
        n => format!(", {n} already at the destination"),
    };
    println!(
        "Layers: {} ({} cached{there}), {:.1} MB downloaded, {:.1} MB reused",
        r.layers,
        r.cache_hits,
        mb(r.bytes_downloaded),
        mb(r.bytes_reused)
    );
    let secs = elapsed.as_secs_f64().max(0.001);
    println!(
        "Time: {secs:.1} s, average {:.1} MB/s",
        mb(r.bytes_downloaded) / secs
    );
    println!("{}", r.cache_line());
    println!("Cache: {}", r.cache);
    if r.served.len() > 1 || r.served.iter().any(|(l, _)| !l.ends_with("(origin)")) {
        let list: Vec<String> = r
            .served
            .iter()
            .map(|(l, n)| format!("{l} ({n} requests)"))
            .collect();
        println!("Served by: {}", list.join(", "));
    }
    let verb = if format == "registry" {
        "Pushed to"
    } else {
        "Saved to"
    };
    println!("{verb}: {}", r.output.display());
    if let Some(step) = next_step(format, &r.output, r.reference.tag.clone()) {
        println!("Next: {step}");
    }
}

/// The summary as the last `--json` event.
pub fn summary_json(
    r: &PullReport,
    format: &str,
    elapsed: std::time::Duration,
) -> serde_json::Value {
    serde_json::json!({
        "event": "summary",
        "image": r.reference.to_string(),
        "digest": r.digest,
        "images": r.images.iter().map(|(p, d)| serde_json::json!({
            "platform": p.as_ref().map(|p| p.to_string()),
            "digest": d,
        })).collect::<Vec<_>>(),
        "layers": r.layers,
        "cached_layers": r.cache_hits,
        "layers_at_destination": r.at_destination,
        "bytes_downloaded": r.bytes_downloaded,
        "bytes_reused": r.bytes_reused,
        "seconds": elapsed.as_secs_f64(),
        "format": format,
        "output": r.output,
        "cache": r.cache,
        "served_by": r.served.iter().map(|(l, n)| serde_json::json!({"endpoint": l, "requests": n})).collect::<Vec<_>>(),
        "next": next_step(format, &r.output, r.reference.tag.clone()),
    })
}

/// `imgpull inspect` as text; what the registry sent (platforms, config
/// fields, media types) is made fit for a terminal line by line.
pub fn inspection(out: &mut impl Write, i: &Inspection) -> std::io::Result<()> {
    let mut text = Vec::new();
    inspection_text(&mut text, i)?;
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "{}", crate::util::text::terminal_safe(line))?;
    }
    Ok(())
}

fn inspection_text(out: &mut impl Write, i: &Inspection) -> std::io::Result<()> {
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
