//! Command-line arguments (clap).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "imgpull",
    version,
    about = "Pull container images from Docker/OCI registries without a Docker daemon",
    after_help = "Examples:\n  imgpull pull nginx:latest\n  imgpull pull --platform linux/arm64 nginx:latest\n  imgpull pull --platform linux/amd64,linux/arm64 nginx:latest -o oci:nginx-layout\n  echo \"$PASS\" | imgpull pull -u dev --password-stdin harbor.example.com/team/app:1\n  imgpull inspect nginx:latest\n  imgpull plugins"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Global {
    /// Config file, read after /etc/imgpull/config.toml, the user's and ./imgpull.toml.
    #[arg(long, global = true, env = "IMGPULL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Command {
    /// Pull an image and write it as a `docker load` tar (or another format).
    Pull(PullArgs),
    /// Push a tar or layout into a registry: docker-archive FILE[:NAME:TAG],
    /// oci:DIR[:TAG] or oci-archive:FILE[:TAG] to [docker://]HOST/PATH[:TAG].
    Push(PushArgs),
    /// Show what a reference names (platforms, layers, config) without downloading layers.
    Inspect(InspectArgs),
    /// Look after the layer cache: ls, stats, verify, prune.
    Cache(CacheArgs),
    /// List the built-in plugins by kind.
    Plugins,
    /// Print a shell completion script: imgpull completions bash > /etc/bash_completion.d/imgpull
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
pub struct CacheArgs {
    /// Cache directory (default ./docker_images_cache, or the config's).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Blobs with size and last use.
    Ls,
    /// Totals: blobs, bytes, partial downloads, oldest and newest use.
    Stats,
    /// Rehash every blob and report those that do not match their digest.
    Verify {
        /// Remove the bad blobs (the next pull downloads them again).
        #[arg(long)]
        repair: bool,
        /// Also every object of the store behind the cache (`object-store`).
        #[arg(long)]
        store: bool,
    },
    /// Store the blobs of a `docker save` tar (classic or OCI-style) for later pulls.
    Import {
        /// The tar file.
        file: PathBuf,
    },
    /// Remove blobs, least recently used first, and stale partial downloads.
    Prune {
        /// Blobs not used for this long (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Keep at most this much (e.g. 10GB, 500MiB).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Everything.
        #[arg(long)]
        all: bool,
    },
}

/// Registry access shared by every command that talks to one.
#[derive(Args)]
pub struct RegistryArgs {
    /// Registry username.
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Registry password (visible to other local users; prefer --password-stdin).
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Extra CA certificate(s), PEM, trusted for the registry's TLS.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Platform(s): os/arch[/variant]; a comma list, repeatable, or `all`
    /// (default: this machine's, e.g. linux/amd64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Vec<String>,
}

#[derive(Args)]
pub struct PullArgs {
    /// Image reference: [host[:port]/]path[:tag][@sha256:...]
    pub image: String,
    /// More images for the same output (-o): layers they share are stored once.
    pub more: Vec<String>,
    /// Output path, optionally with a format prefix: docker-archive:FILE, oci:DIR
    /// (default: built from the image name, e.g. library_nginx_latest.tar).
    #[arg(short, long, value_name = "[FORMAT:]PATH")]
    pub output: Option<String>,
    /// Output format: docker-archive (default), oci (an OCI image layout
    /// directory), oci-archive (that layout as one tar) or rootfs (the
    /// image's files, layers applied, in a directory).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// docker-archive layers: compressed (as pulled, default) or
    /// uncompressed (plain tars named by diff_id, as `docker save` writes).
    #[arg(long, value_name = "FORMAT", value_parser = ["compressed", "uncompressed"])]
    pub layer_format: Option<String>,
    /// docker-archive in the v1.2 layout of `docker save` before Docker 25
    /// (per-layer directories with layer.tar; implies uncompressed layers).
    #[arg(long)]
    pub legacy: bool,
    /// Layers downloaded at once (default 3).
    #[arg(long, value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,
    /// A blob bigger than this whose stream is slower than hashing (a far
    /// or per-connection-capped link) gets parallel Range requests of this
    /// size beside the stream (default 64MiB).
    #[arg(long, value_name = "SIZE")]
    pub chunk_size: Option<String>,
    /// Ranges of one big blob fetched at once (default 4; 1 = never split).
    #[arg(long, value_name = "N")]
    pub max_chunks: Option<usize>,
    /// Cap the total download rate, bytes per second: 500K, 10M (= 10^6), 2MiB.
    #[arg(long, value_name = "RATE")]
    pub limit_rate: Option<String>,
    /// fsync a tar output before renaming it into place (survives a power
    /// cut; slower on a slow disk). Config: sync_output = true.
    #[arg(long)]
    pub sync: bool,
    /// The most bytes one layer may uncompress to, for outputs that
    /// uncompress (rootfs, --layer-format uncompressed, --legacy): a size
    /// (20GiB), auto (100x the compressed size, at least 1 GiB; default)
    /// or none.
    #[arg(long, value_name = "SIZE|auto|none")]
    pub max_layer_uncompressed: Option<String>,
    /// rootfs: create device nodes as the layers say (as root; skipped by
    /// default, as an extraction not meant for a container runtime should).
    #[arg(long)]
    pub devices: bool,
    /// Give up on the whole command after this long (30m, 2h); no limit by
    /// default. Config: timeout.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Cache directory (default ./docker_images_cache).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use a temporary cache, removed after the pull.
    #[arg(long)]
    pub no_cache: bool,
    /// Print one JSON object per event on stdout (start, progress, state,
    /// done, warning, summary, error) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Name to tag the output with (NAME:TAG), e.g. for a pull by digest.
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
    #[command(flatten)]
    pub upload: UploadArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args)]
pub struct PushArgs {
    /// What to push: FILE.tar[:NAME:TAG] (a docker-archive: `docker save`
    /// or imgpull's, every layout), oci:DIR[:TAG] or oci-archive:FILE[:TAG].
    pub source: String,
    /// Where: [docker://]HOST[:PORT]/PATH[:TAG]; without a tag each image
    /// keeps its own.
    pub dest: String,
    /// gzip plain (uncompressed) layers on the way, as `docker push` does;
    /// --compress=false pushes them as they are.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub compress: bool,
    #[command(flatten)]
    pub upload: UploadArgs,
    /// Give up after this long (30m, 2h).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Print one JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How blobs are uploaded (push, and pull -o docker://).
#[derive(Args)]
pub struct UploadArgs {
    /// Blobs uploaded at once (default: --max-concurrent-downloads, 3).
    #[arg(long, value_name = "N")]
    pub max_concurrent_uploads: Option<usize>,
    /// Blobs up to this size go in one request, bigger ones in PATCHes of
    /// this size, each a point to resume from (default 64MiB).
    #[arg(long, value_name = "SIZE")]
    pub upload_chunk_size: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Image reference: [host[:port]/]path[:tag][@sha256:...]
    pub image: String,
    /// Print JSON.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Print the manifest bytes exactly as the registry served them.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}
