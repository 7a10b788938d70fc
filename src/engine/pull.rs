//! One pull, start to finish: reference -> quirks -> credentials -> client
//! -> resolve (platforms) -> fetch configs, check -> fetch layers -> export
//! -> report.

use crate::cache::CacheBackend;
use crate::credentials::CredentialProvider;
use crate::engine::Engine;
use crate::error::Error;
use crate::export::{Destination, ExportError, ExportImage, ExportManifest};
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, ImageConfig};
use crate::oci::platform::{Matcher, Platform, Selection};
use crate::oci::reference::Reference;
use crate::registry::endpoints::Endpoints;
use crate::registry::quirks::{Failure, RegistryQuirks};
use crate::resolve::NoMatch;
use crate::resolve::{resolve, Resolved};
use crate::transfer::fetch::{fetch_all, fetch_many, BlobOutcome, Source};
use crate::transfer::tee::TeeTo;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to pull and where to put it.
pub struct PullOptions {
    pub reference: Reference,
    /// More images for the same output (`imgpull pull A B C -o bundle.tar`).
    pub also: Vec<Reference>,
    /// `--platform`; the config's, else the host's, when `None`.
    pub platforms: Option<Selection>,
    /// `--tag`: the name to write instead of the pulled one.
    pub tag: Option<Reference>,
    /// `-o`; a name built from the reference when `None`.
    pub output: Option<PathBuf>,
    /// `-o docker://…`: the image in a registry the exporter pushes to.
    pub destination: Option<Reference>,
    /// Use a temporary cache, removed afterwards.
    pub no_cache: bool,
    /// Credentials from the command line, asked before the config's.
    pub cli_credentials: Option<Box<dyn CredentialProvider>>,
}

impl PullOptions {
    pub fn new(reference: Reference) -> PullOptions {
        PullOptions {
            reference,
            also: Vec::new(),
            platforms: None,
            tag: None,
            output: None,
            destination: None,
            no_cache: false,
            cli_credentials: None,
        }
    }
}

/// What a finished pull reports.
#[derive(Clone, Debug)]
pub struct PullReport {
    pub reference: Reference,
    /// The digest of what the reference names (index or image).
    pub digest: Digest,
    /// The images written: platform (when from an index) and manifest digest.
    pub images: Vec<(Option<Platform>, Digest)>,
    pub layers: usize,
    pub cache_hits: usize,
    /// Layers a registry destination had: not downloaded.
    pub at_destination: usize,
    pub bytes_reused: u64,
    pub bytes_downloaded: u64,
    pub output: PathBuf,
    pub cache: String,
    /// Requests each endpoint answered (mirrors, origin), in order.
    pub served: Vec<(String, usize)>,
}

impl PullReport {
    /// Totals over several images (the first names the pull).
    fn merge(mut self, other: PullReport) -> PullReport {
        self.images.extend(other.images);
        self.layers += other.layers;
        self.cache_hits += other.cache_hits;
        self.at_destination += other.at_destination;
        self.bytes_reused += other.bytes_reused;
        self.bytes_downloaded += other.bytes_downloaded;
        for (endpoint, n) in other.served {
            match self.served.iter_mut().find(|(e, _)| *e == endpoint) {
                Some((_, m)) => *m += n,
                None => self.served.push((endpoint, n)),
            }
        }
        self
    }

    /// The seed's line: `Cache hits: X/Y layers (P%), Data saved: N MB`.
    pub fn cache_line(&self) -> String {
        let pct = if self.layers == 0 {
            100.0
        } else {
            self.cache_hits as f64 * 100.0 / self.layers as f64
        };
        format!(
            "Cache hits: {}/{} layers ({pct:.1}%), Data saved: {:.1} MB",
            self.cache_hits,
            self.layers,
            self.bytes_reused as f64 / 1_048_576.0
        )
    }
}

/// One reference resolved, its configs fetched and checked: what is left
/// is to fetch its layers.
struct Prepared {
    reference: Reference,
    client: Endpoints,
    resolution: crate::resolve::Resolution,
    image: ExportImage,
    layers: Vec<Descriptor>,
    config_outcomes: Vec<BlobOutcome>,
    /// Layers left out: the destination has them.
    at_destination: usize,
}

/// Where the output goes: `-o`, else a name built from the one reference.
fn output_of(opts: &PullOptions, exporter: &dyn crate::export::Exporter) -> Result<PathBuf, Error> {
    match (&opts.output, opts.also.is_empty()) {
        (Some(p), _) => Ok(p.clone()),
        (None, true) => Ok(PathBuf::from(crate::engine::naming::default_output_name(
            &opts.reference,
            opts.platforms.as_ref(),
            exporter.extension(),
        ))),
        (None, false) => Err(Error::Usage(
            "several images go into one output: give it with -o".into(),
        )),
    }
}

impl Engine {
    /// Registry access for the exporter: `--username` is for the registry
    /// pulled from, so it goes to a destination only on that registry.
    fn registries_for<'a>(&'a self, opts: &'a PullOptions) -> crate::engine::Registries<'a> {
        let same = |r: &Reference| r.registry == opts.reference.registry;
        crate::engine::Registries {
            engine: self,
            cli: opts
                .cli_credentials
                .as_deref()
                .filter(|_| opts.destination.as_ref().is_none_or(same)),
        }
    }
}

/// Where the output goes, and how reports name it: a registry for
/// `-o docker://`, else a path (what a killed pull of it left beside it is
/// cleared first).
fn destination_of(
    opts: &PullOptions,
    exporter: &dyn crate::export::Exporter,
) -> Result<(Destination, PathBuf), Error> {
    if let Some(r) = &opts.destination {
        return Ok((
            Destination::Reference(r.clone()),
            PathBuf::from(format!("docker://{r}")),
        ));
    }
    let output = output_of(opts, exporter)?;
    crate::export::temp::clear_stale(&output);
    Ok((Destination::Path(output.clone()), output))
}

/// One report for every image of the pull.
fn merged_report(
    prepared: &[Prepared],
    outcomes: &[Vec<BlobOutcome>],
    output: &Path,
    cache: &str,
) -> PullReport {
    let mut report: Option<PullReport> = None;
    for (p, layer_outcomes) in prepared.iter().zip(outcomes) {
        let mut r = report_of(
            &p.reference,
            &p.resolution,
            layer_outcomes,
            &p.config_outcomes,
            output.to_path_buf(),
            cache.to_string(),
        );
        r.served = p.client.served();
        r.layers += p.at_destination;
        r.at_destination = p.at_destination;
        report = Some(match report {
            None => r,
            Some(acc) => acc.merge(r),
        });
    }
    report.expect("at least one image")
}

impl Engine {
    pub async fn pull(&self, opts: PullOptions) -> Result<PullReport, Error> {
        if opts.tag.is_some() && !opts.also.is_empty() {
            return Err(Error::Usage(
                "--tag names one image; it cannot be used when pulling several".into(),
            ));
        }
        let exporter = self.exporter()?;
        let (dest, output) = destination_of(&opts, exporter.as_ref())?;
        // The temporary store for --no-cache lives beside the output so
        // exporters can hardlink from it (a push's, in the temp dir).
        let beside = match &dest {
            Destination::Path(p) => p.clone(),
            Destination::Reference(_) => std::env::temp_dir().join("imgpull-push"),
        };
        let (cache, _tmp_guard) = self.open_cache(opts.no_cache, &beside)?;
        cache.maintain().await.map_err(|source| Error::Cache {
            registry: opts.reference.registry.clone(),
            source,
        })?;
        let result = self
            .pull_into(&opts, cache.as_ref(), exporter.as_ref(), &dest, &output)
            .await;
        // Whatever happened: what the cache does beside the pull (uploads of
        // what was committed) is waited for.
        self.finish_cache(cache.as_ref()).await;
        result
    }

    /// The pull proper, once the cache is open.
    async fn pull_into(
        &self,
        opts: &PullOptions,
        cache: &dyn CacheBackend,
        exporter: &dyn crate::export::Exporter,
        dest: &Destination,
        output: &Path,
    ) -> Result<PullReport, Error> {
        // One rate limit for the whole pull.
        let fetch_opts = crate::transfer::fetch::FetchOptions::from_config(&self.config);
        let mut prepared = self.prepare_all(opts, cache, exporter, &fetch_opts).await?;
        let images: Vec<ExportImage> = prepared.iter().map(|p| p.image.clone()).collect();
        for w in exporter.warnings(&images) {
            self.reporter.warn(&w);
        }
        let registries = self.registries_for(opts);
        let cx = crate::export::ExportContext {
            cache,
            reporter: self.reporter.as_ref(),
            registries: &registries,
        };
        let there = exporter.already_there(&images, dest, &cx).await?;
        for p in prepared.iter_mut() {
            let before = p.layers.len();
            p.layers.retain(|l| !there.contains(&l.digest));
            p.at_destination = before - p.layers.len();
        }
        let placed = exporter.live(&images, dest, &cx)?;
        // Into a registry, the cache keeps every blob even when it is a
        // throwaway: a streamed upload that fails is done again from it.
        let tee = placed.clone().map(|out| TeeTo {
            out,
            only: opts.no_cache && matches!(dest, Destination::Path(_)),
        });
        let sources: Vec<Source> = prepared
            .iter()
            .map(|p| Source {
                client: &p.client,
                repository: &p.reference.repository,
                blobs: &p.layers,
            })
            .collect();
        let fetched = fetch_many(
            &sources,
            cache,
            &fetch_opts,
            self.reporter.as_ref(),
            tee.as_ref(),
        )
        .await;
        drop(tee);
        let outcomes = match fetched {
            Ok(o) => o,
            Err((i, e)) => {
                // Now, not when the last download thread lets go of it.
                if let Some(p) = &placed {
                    p.discard();
                }
                return Err(self.hinted(Error::from(e), &prepared[i].reference));
            }
        };
        let report = merged_report(&prepared, &outcomes, output, &cache.describe());
        self.write_output(placed, exporter, &images, dest, &cx)
            .await?;
        Ok(report)
    }

    /// Let the cache end what it does beside the pull (uploads to a shared
    /// store); what failed there is a warning, never the pull's error.
    async fn finish_cache(&self, cache: &dyn CacheBackend) {
        for w in cache.finish().await {
            self.reporter.warn(&w);
        }
    }

    /// Finish the output laid out in advance (copying in what was not
    /// written while downloading), or export everything from the cache.
    async fn write_output(
        &self,
        placed: Option<Arc<dyn crate::export::LiveOutput>>,
        exporter: &dyn crate::export::Exporter,
        images: &[ExportImage],
        dest: &crate::export::Destination,
        cx: &crate::export::ExportContext<'_>,
    ) -> Result<(), Error> {
        match placed {
            Some(live) if Arc::strong_count(&live) == 1 => {
                let (written, copied) = live.finish(dest, cx).await?;
                self.reporter.info(&format!(
                    "{dest}: {written} blobs written as they downloaded, {copied} copied from the cache"
                ));
            }
            // Still shared (a bug): with a throwaway cache the blobs are
            // only in that output, so it cannot be written again.
            Some(shared) => {
                shared.discard();
                return Err(Error::Export(ExportError::Invalid(
                    "internal error: the output was still being written; nothing was saved".into(),
                )));
            }
            None => exporter.export(images, dest, cx).await?,
        }
        Ok(())
    }

    /// `e` with the hint of `failed`'s registry adapter, if it has one.
    fn hinted(&self, e: Error, failed: &Reference) -> Error {
        match self.quirks(failed) {
            Ok(quirks) => add_hint(e, quirks.as_ref(), failed),
            Err(_) => e,
        }
    }

    /// Every image resolved (and its configs checked) before any layer is
    /// downloaded: a wrong name or platform fails at once, and the layers
    /// of all images then download together, each shared one once, into
    /// one output laid out for all of them.
    async fn prepare_all(
        &self,
        opts: &PullOptions,
        cache: &dyn CacheBackend,
        exporter: &dyn crate::export::Exporter,
        fetch_opts: &crate::transfer::fetch::FetchOptions,
    ) -> Result<Vec<Prepared>, Error> {
        let mut prepared = Vec::new();
        for reference in std::iter::once(&opts.reference).chain(&opts.also) {
            let quirks = self.quirks(reference)?;
            let p = self
                .prepare(
                    reference,
                    opts,
                    quirks.as_ref(),
                    cache,
                    exporter,
                    fetch_opts,
                )
                .await
                .map_err(|e| add_hint(e, quirks.as_ref(), reference))?;
            prepared.push(p);
        }
        Ok(prepared)
    }

    /// `reference` resolved to its image manifests (through the cache when
    /// it is on), each reported.
    async fn resolved(
        &self,
        client: &Endpoints,
        reference: &Reference,
        opts: &PullOptions,
        quirks: &dyn RegistryQuirks,
        cache: &dyn CacheBackend,
        selection: &Selection,
    ) -> Result<crate::resolve::Resolution, Error> {
        // Docker Hub: one HEAD tells both the quota and the tag's digest.
        let head = match quirks.reports_rate_limit() {
            true => {
                crate::registry::quota::check(client, reference, selection, self.reporter.as_ref())
                    .await
                    .map(|h| (reference.manifest_ref(), h))
            }
            false => None,
        };
        let source = crate::resolve::cached::ManifestSource {
            client,
            cache: (!opts.no_cache).then_some(cache),
            head,
        };
        let resolution = resolve(&source, reference, selection).await?;
        for r in &resolution.images {
            let platform = r.platform.as_ref().map(|p| format!(" ({p})"));
            self.reporter.info(&format!(
                "resolved {reference} to {}{}",
                r.fetched.digest,
                platform.unwrap_or_default()
            ));
        }
        Ok(resolution)
    }

    /// Configs first, into the cache and checked: a single-image tag is
    /// checked against the wanted platform before any layer is downloaded.
    async fn configs(
        &self,
        client: &Endpoints,
        reference: &Reference,
        resolution: &crate::resolve::Resolution,
        cache: &dyn CacheBackend,
        fetch_opts: &crate::transfer::fetch::FetchOptions,
    ) -> Result<Vec<BlobOutcome>, Error> {
        let configs: Vec<Descriptor> = resolution
            .images
            .iter()
            .map(|r| r.manifest.config.clone())
            .collect();
        let outcomes = fetch_all(
            client,
            &reference.repository,
            cache,
            &configs,
            fetch_opts,
            self.reporter.as_ref(),
            None,
        )
        .await?;
        for r in &resolution.images {
            untyped_config_is_an_image(reference, r, cache).await?;
        }
        Ok(outcomes)
    }

    /// The platforms to pull, and whether the user chose them (then a
    /// single-image tag must match too, rather than being taken as is).
    fn selection(&self, opts: &PullOptions) -> Result<(Selection, bool), Error> {
        if let Some(s) = &opts.platforms {
            return Ok((s.clone(), true));
        }
        match &self.config.platform {
            Some(s) => match Selection::parse(&[s])? {
                Some(sel) => Ok((sel, true)),
                None => Ok((Selection::List(vec![Platform::host()]), false)),
            },
            None => Ok((Selection::List(vec![Platform::host()]), false)),
        }
    }

    /// Resolve one image, fetch its configs into the cache and check them;
    /// its layers are left to fetch.
    async fn prepare(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        quirks: &dyn RegistryQuirks,
        cache: &dyn CacheBackend,
        exporter: &dyn crate::export::Exporter,
        fetch_opts: &crate::transfer::fetch::FetchOptions,
    ) -> Result<Prepared, Error> {
        let (selection, explicit) = self.selection(opts)?;
        let client = self
            .connect(reference, quirks, opts.cli_credentials.as_deref())
            .await?;
        let mut resolution = self
            .resolved(&client, reference, opts, quirks, cache, &selection)
            .await?;
        let config_outcomes = self
            .configs(&client, reference, &resolution, cache, fetch_opts)
            .await?;
        if explicit && resolution.images[0].platform.is_none() {
            let image = &resolution.images[0];
            if !check_single_image(reference, image, cache, &selection).await? {
                self.reporter.warn(&format!(
                    "{reference} is a single image whose config names no platform; \
                     it was not checked against the requested platform"
                ));
            }
        }
        if exporter.accepts_uncompressed_layers() && !opts.no_cache {
            for r in resolution.images.iter_mut() {
                crate::engine::reuse::use_uncompressed(r, cache, self.reporter.as_ref()).await?;
            }
        }
        let layers: Vec<Descriptor> = resolution
            .images
            .iter()
            .flat_map(|r| r.manifest.layers.iter().cloned())
            .collect();
        let tag = match &opts.tag {
            Some(t) => Some(t.clone()),
            None if reference.digest.is_none() => Some(reference.clone()),
            None => None,
        };
        let image = ExportImage {
            reference: reference.clone(),
            tag,
            manifests: resolution.images.iter().map(export_manifest).collect(),
            top: index_of(&resolution),
        };
        Ok(Prepared {
            reference: reference.clone(),
            client,
            resolution,
            image,
            layers,
            config_outcomes,
            at_destination: 0,
        })
    }
}

/// A config typed `application/octet-stream` (Docker 1.10-era pushes) is
/// taken for an image's only when it reads as one; anything else is an
/// artifact, refused as other artifacts are.
async fn untyped_config_is_an_image(
    reference: &Reference,
    image: &Resolved,
    cache: &dyn CacheBackend,
) -> Result<(), Error> {
    let config = &image.manifest.config;
    if config.media_type != crate::oci::manifest::media::UNTYPED_CONFIG {
        return Ok(());
    }
    let bytes = cache
        .read(&config.digest)
        .await
        .map_err(|source| Error::Cache {
            registry: reference.registry.clone(),
            source,
        })?;
    if ImageConfig::is_image_config(&bytes, image.manifest.layers.len()) {
        return Ok(());
    }
    Err(Error::Manifest {
        reference: reference.to_string(),
        source: crate::oci::manifest::ManifestError::NotAnImage {
            what: format!(
                "config {} (typed {}, not an image config)",
                config.digest, config.media_type
            ),
            found: config.media_type.clone(),
            known: crate::oci::manifest::media::CONFIGS.to_vec(),
        },
    })
}

fn report_of(
    reference: &Reference,
    resolution: &crate::resolve::Resolution,
    layers: &[BlobOutcome],
    configs: &[BlobOutcome],
    output: PathBuf,
    cache: String,
) -> PullReport {
    PullReport {
        reference: reference.clone(),
        digest: resolution.top.digest.clone(),
        images: resolution
            .images
            .iter()
            .map(|r| (r.platform.clone(), r.fetched.digest.clone()))
            .collect(),
        layers: layers.len(),
        cache_hits: layers.iter().filter(|o| o.cached).count(),
        at_destination: 0,
        bytes_reused: layers.iter().filter(|o| o.cached).map(|o| o.size).sum(),
        bytes_downloaded: layers.iter().chain(configs).map(|o| o.fetched).sum(),

        output,
        cache,
        served: Vec::new(),
    }
}

/// A tag that names one image (no index) must still be what was asked for:
/// docker refuses `--platform linux/arm64` for an amd64-only image rather
/// than handing it over silently. `Ok(false)` when the config names no
/// platform to check.
async fn check_single_image(
    reference: &Reference,
    image: &Resolved,
    cache: &dyn CacheBackend,
    selection: &Selection,
) -> Result<bool, Error> {
    let Selection::List(wanted) = selection else {
        return Ok(true);
    };
    let digest = &image.manifest.config.digest;
    let bytes = cache.read(digest).await.map_err(|source| Error::Cache {
        registry: reference.registry.clone(),
        source,
    })?;
    // An unparseable config is left to the exporter's readers; only a
    // config that names its platform can contradict the request.
    let Ok(cfg) = serde_json::from_slice::<ImageConfig>(&bytes) else {
        return Ok(false);
    };
    if cfg.os.is_empty() || cfg.architecture.is_empty() {
        return Ok(false);
    }
    let have = Platform::new(&cfg.os, &cfg.architecture, cfg.variant.as_deref());
    for w in wanted {
        if Matcher::new(w).rank(&have).is_none() {
            return Err(Error::NoMatchingPlatform(Box::new(NoMatch {
                reference: reference.to_string(),
                wanted: w.clone(),
                available: vec![(Some(have.normalized()), image.fetched.digest.clone())],
            })));
        }
    }
    Ok(true)
}

/// The index a resolution went through, if it did.
fn index_of(resolution: &crate::resolve::Resolution) -> Option<crate::export::ExportIndex> {
    let top = &resolution.top;
    if resolution
        .images
        .iter()
        .any(|r| r.fetched.digest == top.digest)
    {
        return None;
    }
    let named = serde_json::from_slice::<serde_json::Value>(&top.bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    Some(crate::export::ExportIndex {
        bytes: top.bytes.clone(),
        digest: top.digest.clone(),
        media_type: named.unwrap_or_else(|| {
            if top.media_type == crate::oci::manifest::media::DOCKER_LIST {
                top.media_type.clone()
            } else {
                crate::oci::manifest::media::OCI_INDEX.to_string()
            }
        }),
    })
}

fn export_manifest(r: &Resolved) -> ExportManifest {
    ExportManifest {
        bytes: r.fetched.bytes.clone(),
        digest: r.fetched.digest.clone(),
        media_type: media_type_of(r),
        manifest: r.manifest.clone(),
        platform: r.platform.clone(),
    }
}

/// The image manifest's media type, as written into an output's index:
/// from the document itself (or, when it names none, from its config's
/// type), never from the registry's `Content-Type`, which is the server's
/// say (`text/html` has been seen), not the manifest's.
fn media_type_of(r: &Resolved) -> String {
    crate::oci::manifest::image_media_type(&r.manifest).to_string()
}

fn add_hint(e: Error, quirks: &dyn RegistryQuirks, reference: &Reference) -> Error {
    use crate::registry::RegistryError;
    let (status, anonymous) = match &e {
        Error::Registry(RegistryError::Unauthorized {
            credential_source, ..
        }) => (401, credential_source.is_none()),
        Error::Registry(RegistryError::NotFound { .. }) => (404, true),
        Error::Registry(RegistryError::RateLimited { .. }) => (429, true),
        _ => return e,
    };
    let failure = Failure {
        status,
        repository: &reference.repository,
        anonymous,
    };
    match quirks.hint(&failure) {
        Some(hint) => Error::Hinted {
            source: Box::new(e),
            hint,
        },
        None => e,
    }
}
