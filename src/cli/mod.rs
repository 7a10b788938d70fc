//! The command line: parses flags, builds the engine, renders results and
//! errors. The only module that prints.

mod args;
mod report;

use crate::catalog::{Catalog, Kind};
use crate::config::{Config, Overrides};
use crate::error::{exit, Error};
use crate::plugins::credentials::static_creds::{SecretSource, StaticProvider};
use crate::pull::{Engine, PullOptions};
use crate::secret::Secret;
use args::{Cli, Command, PullArgs};
use clap::Parser;
use std::io::BufRead;
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
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Plugins => {
            print_plugins(&Catalog::builtin()?);
            Ok(())
        }
        Command::Pull(args) => pull(&cli.global, args).await,
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

async fn pull(global: &args::Global, args: PullArgs) -> Result<(), Error> {
    let overrides = Overrides {
        max_concurrent_downloads: args.max_concurrent_downloads,
        ca_file: args.ca_file.clone(),
        platform: args.platform.clone(),
        export: None,
        cache_dir: args.cache_dir.clone(),
    };
    let config = Config::load(global.config.as_deref(), &overrides)?;
    let reporter: Arc<dyn crate::progress::Reporter> = if global.quiet {
        Arc::new(crate::progress::Silent)
    } else {
        Arc::new(report::Plain::new(global.verbose > 0))
    };
    let engine = Engine::new(config, reporter)?;
    let reference = args.image.parse()?;
    let platform = match &args.platform {
        Some(p) => Some(crate::platform::Platform::parse(p)?),
        None => None,
    };
    let tag = match &args.tag {
        Some(t) => {
            let r: crate::reference::Reference = t.parse()?;
            if r.digest.is_some() {
                return Err(Error::Usage(format!(
                    "--tag {t}: a tag cannot carry a digest"
                )));
            }
            Some(r)
        }
        None => None,
    };
    let opts = PullOptions {
        reference: Some(reference),
        platform,
        tag,
        output: args.output.clone(),
        no_cache: args.no_cache,
        cli_credentials: cli_credentials(&args, global.quiet)?,
    };
    let report = engine.pull(opts).await?;
    if !global.quiet {
        report::summary(&report);
    }
    Ok(())
}

/// `--username` with `--password-stdin` (preferred) or `--password`.
fn cli_credentials(
    args: &PullArgs,
    quiet: bool,
) -> Result<Option<Box<dyn crate::credentials::CredentialProvider>>, Error> {
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
