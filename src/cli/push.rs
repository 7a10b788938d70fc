//! `imgpull push SOURCE DEST`.

use super::args::{Global, PushArgs};
use super::{cli_credentials, engine_with, progress, pull_reporter, within};
use crate::config::Overrides;
use crate::engine::push::PushOptions;
use crate::engine::sources::Source;
use crate::error::Error;
use crate::oci::reference::Reference;

pub async fn run(global: &Global, args: PushArgs) -> Result<(), Error> {
    if !args.registry.platform.is_empty() {
        return Err(Error::Usage(
            "--platform chooses what to pull; a push takes every platform of its source".into(),
        ));
    }
    let overrides = Overrides {
        ca_file: args.registry.ca_file.clone(),
        timeout: args.timeout.clone(),
        upload_chunk_size: args.upload.upload_chunk_size.clone(),
        max_concurrent_uploads: args.upload.max_concurrent_uploads,
        ..Overrides::default()
    };
    let mode = progress::Mode::choose(args.json, global.quiet);
    let (bars, reporter) = pull_reporter(mode, global.verbose > 0);
    let started = std::time::Instant::now();
    let engine = engine_with(global, overrides, reporter)?;
    let dest = args.dest.strip_prefix("docker://").unwrap_or(&args.dest);
    let opts = PushOptions {
        source: Source::parse(&args.source)?,
        dest: Reference::parse_destination(dest)?,
        compress: args.compress,
        cli_credentials: cli_credentials(&args.registry, global.quiet)?,
    };
    let result = within(engine.config().timeout(), engine.push(opts)).await;
    if let Some(b) = &bars {
        match &result {
            Ok(_) => b.finish(),
            Err(_) => b.stop(),
        }
    }
    let reports = result?;
    let secs = started.elapsed().as_secs_f64();
    match mode {
        progress::Mode::Json => progress::emit(serde_json::json!({
            "event": "summary",
            "pushed": reports,
            "seconds": secs,
            "next": reports.iter().map(|r| format!("docker pull {}", r.destination)).collect::<Vec<_>>(),
        })),
        progress::Mode::Quiet => {}
        _ => {
            println!("Time: {secs:.1} s");
            for r in &reports {
                println!("Next: docker pull {}", r.destination);
            }
        }
    }
    Ok(())
}
