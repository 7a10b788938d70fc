//! Mirrors with fallback: the endpoints of one registry, mirrors first and
//! the origin last (unless `mirror_only`). A request goes to the first
//! endpoint still alive; a mirror that fails it (connect, TLS, 5xx, 404,
//! 401, a wrong digest) is skipped for the rest of the pull and the next
//! endpoint is asked. With `mirror_tags = false` mirrors are asked only for
//! content named by digest, as skopeo's digest-only mode. The origin
//! behind live mirrors is connected only when a request reaches it, so a
//! pull the mirrors serve sends the origin nothing.

use crate::oci::digest::Digest;
use crate::registry::{
    Body, ClientOptions, FetchedManifest, RegistryClient, RegistryError, RetryPolicy, Tries,
};
use reqwest::header::HeaderMap;
use reqwest::Response;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct Endpoint {
    client: tokio::sync::OnceCell<RegistryClient>,
    /// How to connect it, when it is not yet (the origin behind mirrors).
    later: Option<ClientOptions>,
    retry: RetryPolicy,
    /// `https://mirror.example` or `origin (registry-1.docker.io)`.
    pub label: String,
    pub is_mirror: bool,
    dead: AtomicBool,
    /// Requests this endpoint answered.
    served: AtomicUsize,
}

pub struct Endpoints {
    eps: Vec<Endpoint>,
    mirror_tags: bool,
    /// What the user calls the registry (for messages).
    registry: String,
}

impl Endpoints {
    pub fn new(registry: &str, mirror_tags: bool) -> Endpoints {
        Endpoints {
            eps: Vec::new(),
            mirror_tags,
            registry: registry.to_string(),
        }
    }

    pub fn push(&mut self, client: RegistryClient, label: String, is_mirror: bool) {
        let retry = client.retry_policy().clone();
        let client = tokio::sync::OnceCell::new_with(Some(client));
        self.add(client, None, retry, label, is_mirror);
    }

    /// An endpoint connected (`/v2/` pinged) only when first asked.
    pub fn push_later(&mut self, opts: ClientOptions, label: String, is_mirror: bool) {
        let retry = opts.retry.clone();
        self.add(
            tokio::sync::OnceCell::new(),
            Some(opts),
            retry,
            label,
            is_mirror,
        );
    }

    fn add(
        &mut self,
        client: tokio::sync::OnceCell<RegistryClient>,
        later: Option<ClientOptions>,
        retry: RetryPolicy,
        label: String,
        is_mirror: bool,
    ) {
        self.eps.push(Endpoint {
            client,
            later,
            retry,
            label,
            is_mirror,
            dead: AtomicBool::new(false),
            served: AtomicUsize::new(0),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.eps.is_empty()
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.eps
            .first()
            .map(|e| e.retry.clone())
            .unwrap_or_default()
    }

    /// Which endpoints answered how many requests, in order.
    pub fn served(&self) -> Vec<(String, usize)> {
        self.eps
            .iter()
            .map(|e| (e.label.clone(), e.served.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// A mirror stops being asked; the origin never does.
    /// Skip mirror `index` for the rest of the pull — unless it is the
    /// last endpoint left (with `mirror_only` and one mirror, a reset must
    /// not end the pull).
    pub fn give_up_on(&self, index: usize) {
        let live = self
            .eps
            .iter()
            .filter(|e| !e.dead.load(Ordering::Relaxed))
            .count();
        if let Some(e) = self.eps.get(index).filter(|e| e.is_mirror) {
            if live > 1 {
                e.dead.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The endpoints to ask, in order.
    fn live(&self, by_digest: bool) -> impl Iterator<Item = (usize, &Endpoint)> {
        let tags_ok = self.mirror_tags;
        self.eps.iter().enumerate().filter(move |(_, e)| {
            !e.dead.load(Ordering::Relaxed) && (!e.is_mirror || by_digest || tags_ok)
        })
    }

    /// Run `op` on each live endpoint until one answers; a failing mirror is
    /// skipped from then on. The origin's (or the last) error is returned.
    async fn first<'a, T, F, Fut>(
        &'a self,
        by_digest: bool,
        op: F,
    ) -> Result<(T, usize), RegistryError>
    where
        F: Fn(&'a RegistryClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let mut last = None;
        for (i, e) in self.live(by_digest) {
            let client = match e.client().await {
                Ok(c) => c,
                Err(err) if e.is_mirror => {
                    e.dead.store(true, Ordering::Relaxed);
                    last = Some(err);
                    continue;
                }
                Err(err) => return Err(err),
            };
            match op(client).await {
                Ok(t) => {
                    e.served.fetch_add(1, Ordering::Relaxed);
                    return Ok((t, i));
                }
                Err(err) if e.is_mirror => {
                    e.dead.store(true, Ordering::Relaxed);
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail: "no endpoint is left to ask (every mirror failed and mirror_only is set)"
                .into(),
        }))
    }

    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        max: usize,
        tries: &Tries,
    ) -> Result<FetchedManifest, RegistryError> {
        let by_digest = reference.parse::<Digest>().is_ok();
        self.first(by_digest, |c| c.manifest(repository, reference, max, tries))
            .await
            .map(|(m, _)| m)
    }

    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        tries: &Tries,
    ) -> Result<HeaderMap, RegistryError> {
        let by_digest = reference.parse::<Digest>().is_ok();
        self.first(by_digest, |c| c.head_manifest(repository, reference, tries))
            .await
            .map(|(h, _)| h)
    }

    pub async fn small_blob(
        &self,
        repository: &str,
        desc: &crate::oci::manifest::Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        self.first(true, |c| c.small_blob(repository, desc))
            .await
            .map(|(b, _)| b)
    }

    /// A blob from byte `offset` (to `end`, or to its end), and the index
    /// of the endpoint serving it (so a failure mid-body can give up on
    /// that mirror). Every request made for it takes from `tries`.
    pub async fn blob_range(
        &self,
        repository: &str,
        digest: &Digest,
        start: u64,
        end: Option<u64>,
        tries: &Tries,
    ) -> Result<(Response, usize), RegistryError> {
        self.first(true, |c| {
            c.blob_range(repository, digest, start, end, tries)
        })
        .await
    }

    /// The body of an answer from endpoint `index`, read under its rules.
    pub fn body(&self, index: usize, resp: Response) -> Body {
        let ep = self.eps.get(index).or(self.eps.last());
        let client = ep.and_then(|e| e.client.get());
        client.expect("answered by a connected endpoint").body(resp)
    }
}

impl Endpoint {
    /// Its client, connected now if it was not yet.
    async fn client(&self) -> Result<&RegistryClient, RegistryError> {
        self.client
            .get_or_try_init(|| async {
                let opts = self
                    .later
                    .clone()
                    .expect("an endpoint is connected or can be");
                RegistryClient::connect(opts).await
            })
            .await
    }
}
