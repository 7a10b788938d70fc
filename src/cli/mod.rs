//! The command line: parses flags, builds the engine, renders results and
//! errors. The only module that prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod cache;
mod errors;
mod progress;
mod push;
mod report;

use crate::catalog::{Catalog, Kind};
use crate::config::{Config, Overrides};
use crate::credentials::CredentialProvider;
use crate::engine::inspect::InspectOptions;
use crate::engine::pull::PullOptions;
use crate::engine::Engine;
use crate::error::Error;
use crate::oci::platform::Selection;
use crate::oci::reference::Reference;
use crate::plugins::credentials::static_creds::{SecretSource, StaticProvider};
use crate::util::secret::Secret;
use args::{Cli, Command, Global, InspectArgs, PullArgs, RegistryArgs};
use clap::Parser;
use errors::exit;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { 0 };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::OTHER;
        }
    };
    let quiet = cli.global.quiet;
    let json = matches!(&cli.command, Command::Pull(a) if a.json);
    // SIGINT (Ctrl-C) and SIGTERM (`kill`, `timeout`, a CI runner giving
    // up) both stop the pull the same way; the exit code says which.
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run(cli) => Ok(r),
            _ = tokio::signal::ctrl_c() => Err(exit::INTERRUPTED),
            () = terminated() => Err(exit::TERMINATED),
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(code) => return interrupted(rt, code, json, quiet),
    };
    shutdown(rt);
    match outcome {
        Ok(code) => code,
        Err(e) => {
            if json {
                progress::emit(serde_json::json!({
                    "event": "error",
                    "message": safe(&e.to_string()),
                    "hint": errors::hint(&e),
                    "exit_code": errors::exit_code(&e),
                }));
            } else {
                eprintln!("error: {}", safe(&e.to_string()));
                if let Some(h) = errors::hint(&e) {
                    eprintln!("hint: {h}");
                }
            }
            errors::exit_code(&e)
        }
    }
}

/// SIGTERM arrives (never, if it cannot be listened for).
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut t) => {
            t.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// A message fit for a terminal: registry data in it may hold escape
/// sequences (see [`crate::util::text::terminal_safe`]).
fn safe(message: &str) -> String {
    crate::util::text::terminal_safe(message)
}

/// Blocking work may wait on a lock another process holds: never let it
/// keep this process alive once the answer is known.
fn shutdown(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(std::time::Duration::from_secs(5))
}

/// Stopped by a signal: the pull was dropped (downloads stopped, partial
/// blobs flushed to the cache for the next run); the export sees the
/// request and removes what it started.
fn interrupted(rt: tokio::runtime::Runtime, code: i32, json: bool, quiet: bool) -> i32 {
    crate::util::cancel::request();
    rt.spawn(async move {
        // A second signal (either) exits at once.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated() => {}
        }
        std::process::exit(code);
    });
    shutdown(rt);
    let message = format!(
        "{}: partial downloads were kept in the cache (not with --no-cache) \
         and the next pull resumes them; the unfinished output was removed",
        if code == exit::TERMINATED {
            "terminated"
        } else {
            "interrupted"
        }
    );
    if json {
        progress::emit(serde_json::json!({
            "event": "error",
            "message": message,
            "hint": null,
            "exit_code": code,
        }));
    } else if !quiet {
        eprintln!("{message}");
    }
    code
}

async fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Plugins => {
            print_plugins(&Catalog::builtin()?);
            Ok(0)
        }
        Command::Pull(args) => pull(&cli.global, args).await.map(|()| 0),
        Command::Inspect(args) => inspect(&cli.global, args).await.map(|()| 0),
        Command::Push(args) => push::run(&cli.global, args).await.map(|()| 0),
        Command::Cache(args) => cache::run(&cli.global, args).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "imgpull", &mut std::io::stdout());
            Ok(0)
        }
    }
}

fn print_plugins(catalog: &Catalog) {
    for kind in [
        Kind::Credentials,
        Kind::Registry,
        Kind::Cache,
        Kind::Exporter,
    ] {
        println!("{kind}:");
        for p in catalog.iter().filter(|p| p.kind() == kind) {
            println!("  {:<16} {}", p.name, p.summary);
        }
    }
}

pub(crate) fn engine(global: &Global, overrides: Overrides) -> Result<Engine, Error> {
    let reporter: Arc<dyn crate::progress::Reporter> = if global.quiet {
        Arc::new(crate::progress::Silent)
    } else {
        Arc::new(progress::Plain::new(global.verbose > 0))
    };
    engine_with(global, overrides, reporter)
}

pub(crate) fn engine_with(
    global: &Global,
    overrides: Overrides,
    reporter: Arc<dyn crate::progress::Reporter>,
) -> Result<Engine, Error> {
    let config = Config::load(global.config.as_deref(), &overrides)?;
    if !global.quiet {
        for w in &config.warnings {
            reporter.warn(w);
        }
    }
    Engine::new(config, reporter)
}

/// Split `-o FORMAT:PATH` when FORMAT names an exporter (skopeo style).
fn split_output(output: &str) -> (Option<String>, PathBuf) {
    if let Some(rest) = output.strip_prefix("docker://") {
        return (Some("registry".to_string()), PathBuf::from(rest));
    }
    if let Some((prefix, rest)) = output.split_once(':') {
        let known = Catalog::builtin()
            .map(|c| c.names(Kind::Exporter))
            .unwrap_or_default();
        if known.iter().any(|k| k == prefix) && !rest.is_empty() {
            return (Some(prefix.to_string()), PathBuf::from(rest));
        }
    }
    (None, PathBuf::from(output))
}

async fn pull(global: &Global, args: PullArgs) -> Result<(), Error> {
    let (export, output) = export_and_output(&args)?;
    let overrides = pull_overrides(&args, export);
    let mode = progress::Mode::choose(args.json, global.quiet);
    let (bars, reporter) = pull_reporter(mode, global.verbose > 0);
    let started = std::time::Instant::now();
    let engine = engine_with(global, overrides, reporter)?;
    check_format_flags(&args, &engine.config().export)?;
    let opts = pull_options(global, &args, output, &engine.config().export)?;
    let result = within(engine.config().timeout(), engine.pull(opts)).await;
    if let Some(b) = &bars {
        match &result {
            Ok(_) => b.finish(),
            Err(_) => b.stop(),
        }
    }
    let report = result?;
    let format = engine.config().export.as_str();
    match mode {
        progress::Mode::Json => {
            progress::emit(report::summary_json(&report, format, started.elapsed()))
        }
        progress::Mode::Quiet => {}
        _ => report::summary(&report, format, started.elapsed()),
    }
    Ok(())
}

/// The export format (`-o FORMAT:PATH`, else `--format`; the two must
/// agree) and the output path.
fn export_and_output(args: &PullArgs) -> Result<(Option<String>, Option<PathBuf>), Error> {
    let (prefix, output) = match &args.output {
        Some(o) => {
            let (f, p) = split_output(o);
            (f, Some(p))
        }
        None => (None, None),
    };
    let export = match (prefix, &args.format) {
        (Some(a), Some(b)) if a != *b => {
            return Err(Error::Usage(format!(
                "-o says format {a}, --format says {b}"
            )))
        }
        (p, f) => p.or(f.clone()),
    };
    Ok((export, output))
}

/// The config overrides `pull`'s flags make.
fn pull_overrides(args: &PullArgs, export: Option<String>) -> Overrides {
    Overrides {
        max_concurrent_downloads: args.max_concurrent_downloads,
        ca_file: args.registry.ca_file.clone(),
        platform: None,
        export,
        cache_dir: args.cache_dir.clone(),
        layer_format: args.layer_format.clone(),
        legacy: args.legacy,
        chunk_size: args.chunk_size.clone(),
        max_chunks: args.max_chunks,
        limit_rate: args.limit_rate.clone(),
        sync_output: args.sync.then_some(true),
        max_layer_uncompressed: args.max_layer_uncompressed.clone(),
        timeout: args.timeout.clone(),
        devices: args.devices,
        upload_chunk_size: args.upload.upload_chunk_size.clone(),
        max_concurrent_uploads: args.upload.max_concurrent_uploads,
    }
}

/// Where a pull's progress goes in `mode`; the bars too when they are
/// drawn (to be finished or stopped at the end).
pub(crate) fn pull_reporter(
    mode: progress::Mode,
    verbose: bool,
) -> (
    Option<Arc<progress::Bars>>,
    Arc<dyn crate::progress::Reporter>,
) {
    let bars = (mode == progress::Mode::Bars).then(|| Arc::new(progress::Bars::new(verbose)));
    let reporter: Arc<dyn crate::progress::Reporter> = match mode {
        progress::Mode::Bars => bars.clone().expect("made above"),
        progress::Mode::Plain => Arc::new(progress::Plain::new(verbose)),
        progress::Mode::Json => Arc::new(progress::Json::new(verbose)),
        progress::Mode::Quiet => Arc::new(crate::progress::Silent),
    };
    (bars, reporter)
}

/// Flags that apply to one export format only must not meet another.
fn check_format_flags(args: &PullArgs, format: &str) -> Result<(), Error> {
    if (args.layer_format.is_some() || args.legacy) && format != "docker-archive" {
        return Err(Error::Usage(format!(
            "--layer-format and --legacy apply to docker-archive, not {format}"
        )));
    }
    if args.devices && format != "rootfs" {
        return Err(Error::Usage(format!(
            "--devices applies to rootfs, not {format}"
        )));
    }
    Ok(())
}

/// What to pull, and how, from `pull`'s arguments (credentials last: they
/// may be read from stdin).
fn pull_options(
    global: &Global,
    args: &PullArgs,
    output: Option<PathBuf>,
    export: &str,
) -> Result<PullOptions, Error> {
    let tag = tag(args)?;
    let mut opts = PullOptions::new(args.image.parse()?);
    opts.also = args
        .more
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    opts.platforms = Selection::parse(&args.registry.platform)?;
    opts.tag = tag;
    opts.no_cache = args.no_cache;
    if export == "registry" {
        let to = output.as_deref().and_then(|o| o.to_str()).ok_or_else(|| {
            Error::Usage("the registry format needs -o docker://HOST/PATH[:TAG]".into())
        })?;
        opts.destination = Some(Reference::parse_destination(to)?);
    } else {
        opts.output = output;
    }
    opts.cli_credentials = cli_credentials(&args.registry, global.quiet)?;
    Ok(opts)
}

/// `--tag`: a name to write, which cannot carry a digest.
fn tag(args: &PullArgs) -> Result<Option<Reference>, Error> {
    let Some(t) = &args.tag else {
        return Ok(None);
    };
    let r: Reference = t.parse()?;
    if r.digest.is_some() {
        return Err(Error::Usage(format!(
            "--tag {t}: a tag cannot carry a digest"
        )));
    }
    Ok(Some(r))
}

async fn inspect(global: &Global, args: InspectArgs) -> Result<(), Error> {
    let overrides = Overrides {
        ca_file: args.registry.ca_file.clone(),
        ..Overrides::default()
    };
    let engine = engine(global, overrides)?;
    let opts = InspectOptions {
        reference: args.image.parse()?,
        platforms: Selection::parse(&args.registry.platform)?,
        cli_credentials: cli_credentials(&args.registry, global.quiet)?,
    };
    let inspection = within(engine.config().timeout(), engine.inspect(opts)).await?;
    let mut out = std::io::stdout().lock();
    let written = if args.raw {
        out.write_all(inspection.raw())
    } else if args.json {
        let text = serde_json::to_string_pretty(&inspection).expect("inspection serializes");
        writeln!(out, "{text}")
    } else {
        report::inspection(&mut out, &inspection)
    };
    written.map_err(|e| Error::io("<stdout>", e))
}

/// `work`, given up after `limit` (`timeout`): what it started is dropped
/// as on Ctrl-C (partials kept, unfinished outputs removed).
pub(crate) async fn within<T>(
    limit: Option<std::time::Duration>,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(limit) = limit else {
        return work.await;
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => {
            crate::util::cancel::request();
            Err(Error::TimedOut(limit))
        }
    }
}

/// `--username` with `--password-stdin` (preferred) or `--password`.
pub(crate) fn cli_credentials(
    args: &RegistryArgs,
    quiet: bool,
) -> Result<Option<Box<dyn CredentialProvider>>, Error> {
    let Some(user) = &args.username else {
        if args.password.is_some() || args.password_stdin {
            return Err(Error::Usage(
                "--password/--password-stdin need --username".into(),
            ));
        }
        return Ok(None);
    };
    let secret = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(Error::Usage(
                "give --password or --password-stdin, not both".into(),
            ))
        }
        (Some(p), false) => {
            if !quiet {
                eprintln!(
                    "warning: --password is visible to other local users in the process list; prefer --password-stdin"
                );
            }
            Secret::new(p.clone())
        }
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Error::io("<stdin>", e))?;
            Secret::new(line.trim_end_matches(['\r', '\n']))
        }
        (None, false) => {
            return Err(Error::Usage(
                "--username needs --password-stdin (or --password)".into(),
            ))
        }
    };
    Ok(Some(Box::new(StaticProvider::password(
        "--username/--password",
        user,
        SecretSource::Inline(secret),
    ))))
}
