//! Building and running the service: `Application::build` binds the listener
//! first, so a configured port of 0 gives each test its own server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, Settings};
use crate::http::{metrics_router, router, AppState, ConnectionLimits};
use crate::ingest::Ingest;
use crate::jws::Verifier;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

impl StartupError {
    /// Whether the configuration is at fault (a key to fix), rather than
    /// what happened at run time (a port taken, a database that failed).
    pub fn is_configuration(&self) -> bool {
        match self {
            StartupError::Config(_)
            | StartupError::Tls(_)
            | StartupError::Store(StoreError::UnsupportedUrl(_)) => true,
            StartupError::Store(_) | StartupError::Listen { .. } => false,
        }
    }
}

pub struct Application {
    check: crate::config::CheckSettings,
    products: Arc<crate::ledger::Products>,
    appstore_api: Arc<crate::appstore_api::AppStoreApi>,
    appstore_api_settings: crate::config::AppStoreApiSettings,
    events: crate::config::EventsSettings,
    /// Each app's `[apps.consumption]`, by bundle id.
    consumption_policies: Arc<std::collections::HashMap<String, crate::consumption::Policy>>,
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    tls: Option<RustlsConfig>,
    app: axum::Router,
    limits: ConnectionLimits,
    /// `/metrics` on its own address, when configured.
    metrics_server: Option<(std::net::TcpListener, axum::Router)>,
    store: Store,
    rejections: Arc<crate::http::RejectionTally>,
    shutdown_grace: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Application::build_with_clock(settings, crate::clock::system()).await
    }

    /// As [`Application::build`], telling the time by `clock` (tests make
    /// time pass with a manual one).
    pub async fn build_with_clock(
        settings: Settings,
        clock: crate::clock::SharedClock,
    ) -> Result<Application, StartupError> {
        survive_file_size_limit();
        let anchors = settings.trust_anchors()?;
        let tls = match (&settings.server.tls_cert, &settings.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let store = Store::connect(&settings.database)
            .await?
            .with_clock(clock.clone())
            .with_products(Arc::new(settings.products()));
        store.open_endpoints(&settings.events.sink_names()).await?;
        // Once, after an upgrade: answers told before this service takes a
        // notification, so that nothing is announced as new that was not.
        let seeded = store.seed_told_answers().await?;
        if seeded > 0 {
            tracing::info!(
                seeded,
                "answers of items folded before entitlement events kept as told"
            );
        }
        let ingest = Ingest::new(Verifier::new(anchors), &settings.apps);
        if settings.api.tokens.is_empty() {
            tracing::warn!(
                "no [api] tokens configured: every query API call (/v1/...) will be answered 401"
            );
        }
        if !ingest.has_apps() {
            tracing::warn!(
                "no [[apps]] configured: every genuine notification will be quarantined"
            );
        }
        let appstore_api = Arc::new(crate::appstore_api::AppStoreApi::from_settings(
            &settings.apps,
            crate::appstore_api::RetryPolicy::default(),
            &clock,
        )?);
        let ingest = Arc::new(ingest);
        let request_timeout = settings.request_timeout();
        let metrics = Arc::new(Metrics::new(store.write_batch_sizes()));
        let rejections = Arc::new(crate::http::RejectionTally::default());
        let consumption_policies = Arc::new(crate::sync::consumption_policies(&settings.apps));
        let state = AppState {
            ingest: Arc::clone(&ingest),
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            // Leave the handler time to answer 503 before the request times out.
            store_timeout: request_timeout.mul_f64(0.8),
            api_tokens: Arc::new(settings.api.tokens.clone()),
            products: Arc::new(settings.products()),
            appstore_api: Arc::clone(&appstore_api),
            consumption_policies: Arc::clone(&consumption_policies),
            report_limiter: Arc::new(crate::http::ReportLimiter::new(
                settings.api.reports_per_minute,
            )),
            console: Arc::new(crate::http::ConsoleState::new(
                settings.console.clone(),
                settings.server.tls_cert.is_some(),
                // Checked when the settings loaded.
                settings
                    .server
                    .client_address_header
                    .as_deref()
                    .and_then(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).ok()),
            )),
            rejections: Arc::clone(&rejections),
            events: Arc::new(settings.events.clone()),
        };
        let server = &settings.server;
        let app = router(
            state.clone(),
            server.max_body_bytes,
            request_timeout,
            server.metrics_listen.is_none(),
        );
        let limits = ConnectionLimits::new(
            Duration::from_millis(server.header_read_timeout_ms),
            Duration::from_millis(server.idle_timeout_ms),
            server.max_connections,
            Arc::clone(&metrics),
        );
        let listener = listen(server.listen)?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: server.listen,
                source,
            })?;
        let metrics_server = match server.metrics_listen {
            Some(addr) => Some((listen(addr)?, metrics_router(state, request_timeout))),
            None => None,
        };
        Ok(Application {
            check: settings.check.clone(),
            products: Arc::new(settings.products()),
            appstore_api,
            appstore_api_settings: settings.appstore_api.clone(),
            consumption_policies,
            events: settings.events.clone(),
            ingest,
            metrics,
            listener,
            local_addr,
            tls,
            app,
            limits,
            metrics_server,
            store,
            rejections,
            shutdown_grace: Duration::from_millis(settings.server.shutdown_grace_ms),
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A delivery job for each `[[events.endpoints]]` and
    /// `[[events.streams]]`, claiming as `holder`.
    fn deliverers(&self, holder: Arc<str>) -> Vec<crate::webhooks::Deliverer> {
        let lease = self.events.claim_lease_ms();
        let endpoints = self.events.endpoints.iter().filter_map(|endpoint| {
            crate::webhooks::Deliverer::new(
                self.store.clone(),
                endpoint.clone(),
                Arc::clone(&self.metrics),
                Arc::clone(&holder),
                lease,
            )
            .inspect_err(|error| {
                tracing::error!(endpoint = %endpoint.name, %error, "no webhook deliveries to this endpoint");
            })
            .ok()
        });
        let streams = self.events.streams.iter().map(|stream| {
            crate::webhooks::Deliverer::for_stream(
                self.store.clone(),
                stream.clone(),
                Arc::clone(&self.metrics),
                Arc::clone(&holder),
                lease,
            )
        });
        endpoints.chain(streams).collect()
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests
    /// in flight finish (up to the grace period), and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = Handle::new();
        let metrics_handle = Handle::new();
        let grace = self.shutdown_grace;
        let stopper = handle.clone();
        let metrics_stopper = metrics_handle.clone();
        let stop_workers = crate::stop::Stop::new();
        let on_shutdown = stop_workers.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            // Long jobs stop now, not after the grace period.
            on_shutdown.cancel();
            stopper.graceful_shutdown(Some(grace));
            metrics_stopper.graceful_shutdown(Some(grace));
        });
        let workers = stop_workers.clone();
        let leases = crate::lease::Leases::new(Arc::clone(&self.metrics));
        let mut syncs = crate::sync::spawn_periodic(
            Arc::clone(&self.appstore_api),
            Arc::clone(&self.ingest),
            self.store.clone(),
            &self.appstore_api_settings,
            self.check.tolerance_minutes,
            &leases,
            &workers,
        );
        let consumption = crate::sync::ConsumptionJob {
            api: Arc::clone(&self.appstore_api),
            store: self.store.clone(),
            policies: Arc::clone(&self.consumption_policies),
            holder: leases.holder(),
            metrics: Arc::clone(&self.metrics),
        };
        syncs.push(crate::retention::spawn_prune(
            self.store.clone(),
            self.events.retention_ms(),
            leases.lease(
                &self.store,
                "events-prune",
                crate::retention::PRUNE_INTERVAL,
            ),
            workers.clone(),
        ));
        syncs.push(crate::retention::spawn_clock(
            self.store.clone(),
            leases.lease(
                &self.store,
                "events-clock",
                crate::retention::CLOCK_INTERVAL,
            ),
            workers.clone(),
        ));
        syncs.extend(crate::webhooks::spawn_deliveries(
            self.deliverers(leases.holder()),
            &workers,
        ));
        syncs.extend(crate::sync::spawn_consumption(
            consumption,
            &self.appstore_api_settings,
            &leases,
            &workers,
        ));
        let checker = (self.check.interval_ms > 0).then(|| {
            let interval = Duration::from_millis(self.check.interval_ms);
            crate::check::spawn_periodic(
                self.store.clone(),
                self.check.tolerance_minutes,
                Arc::clone(&self.products),
                interval,
                Arc::clone(&self.metrics),
                leases.lease(&self.store, "check", interval),
                stop_workers.clone(),
            )
        });
        let rejections_flusher = crate::http::spawn_flusher(
            Arc::clone(&self.rejections),
            self.store.clone(),
            workers.clone(),
        );
        let metrics_served = match self.metrics_server {
            Some((listener, app)) => {
                tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics");
                // Its own small cap: a scraper or two, not the internet.
                let limits = self.limits.with_max_connections(64);
                let server = axum_server::from_tcp(listener)?
                    .acceptor(limits)
                    .handle(metrics_handle.clone())
                    .serve(app.into_make_service());
                Some(tokio::spawn(server))
            }
            None => None,
        };
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), "listening");
        // The peer's address: the console limits failed sign-ins by it.
        let service = self
            .app
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = match self.tls {
            Some(tls) => {
                let limits = self.limits;
                axum_server::from_tcp_rustls(self.listener, tls)?
                    .map(|tls| tls.acceptor(limits))
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)?
                    .acceptor(self.limits)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        if let Some(metrics_served) = metrics_served {
            metrics_handle.graceful_shutdown(Some(grace));
            let _ = metrics_served.await;
        }
        // However the server stopped, the checker stops too (between two
        // pages of the check it may be running) before the store closes. A
        // page read on a loaded machine may outlast the grace period: then
        // the check is dropped. It only reads until its scan is complete;
        // the findings of a complete scan are kept in small transactions,
        // each whole, which the next check completes; its lease lapses.
        // Likewise a call to Apple may be waiting out a 429.
        stop_workers.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(checker) = checker {
            if !stopped_by(deadline, checker).await {
                tracing::warn!("the check did not stop within the grace period; dropped");
            }
        }
        for sync in syncs {
            stopped_by(deadline, sync).await;
        }
        let _ = rejections_flusher.await;
        if let Err(e) = self.rejections.flush(&self.store).await {
            tracing::warn!(error = %e.chain(), "refused deliveries of the last seconds not counted");
        }
        self.store.close().await;
        tracing::info!("stopped");
        served
    }
}

/// Waits for `task` until `deadline`, then drops it: whether it stopped
/// by itself.
async fn stopped_by<T>(
    deadline: tokio::time::Instant,
    mut task: tokio::task::JoinHandle<T>,
) -> bool {
    let stopped = tokio::time::timeout_at(deadline, &mut task).await.is_ok();
    if !stopped {
        task.abort();
    }
    stopped
}

fn listen(addr: SocketAddr) -> Result<std::net::TcpListener, StartupError> {
    let listen_error = |source| StartupError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    Ok(listener)
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<RustlsConfig, StartupError> {
    let tls_error = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        StartupError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error("server.tls_cert", cert, &e))?;
    if certs.is_empty() {
        return Err(tls_error(
            "server.tls_cert",
            cert,
            &"no certificate in the file",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("server.tls_key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // TLS 1.2 and 1.3 only (rustls implements nothing older).
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StartupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartupError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// A file-size limit (RLIMIT_FSIZE) reached by a write raises SIGXFSZ,
/// whose default action kills the process with every request in flight.
/// With a handler registered (tokio keeps it for the life of the process)
/// the write fails with EFBIG instead, and the request gets 503.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Err(error) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            tracing::warn!(%error, "cannot handle SIGXFSZ; a file-size limit would kill the process");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
