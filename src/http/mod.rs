//! The HTTP server: routes, middleware (access log, body limit), error routing and shutdown.

pub mod auth;
mod body;
mod conn;
mod discovery;
#[cfg(debug_assertions)]
mod faults;
pub mod metrics;
mod paths;
pub mod quirks;
mod refusals;
pub mod resources;
pub mod tls;
mod traffic;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, web};
use anyhow::Context;

use crate::auth::Verifier;
use crate::config::Config;
use crate::error::Error;
use crate::jobs;
use crate::scim::ResourceKind;
use crate::scim::quirks::{QuirkCounter, Quirks};
use crate::scim::schema::Model;
use crate::store::Store;

/// Providers' models kept at once; the bound only stops a pathological number of providers
/// from growing memory.
const MODEL_CAPACITY: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared by every request handler.
pub struct AppState {
    pub store: Store,
    pub verifier: Verifier,
    /// Scheme, host and prefix clients reach this server at, without a trailing slash.
    pub public_base: String,
    pub config: Config,
    /// Non-standard request shapes accepted, per identity provider.
    pub quirks: std::sync::Arc<QuirkCounter>,
    /// Token rows as last read (see `auth::RecordCache`).
    pub records: auth::RecordCache,
    /// The schema model every provider has until it registers extensions of its own.
    pub builtin_model: Arc<Model>,
    /// Providers' own models, by provider id (see `model`).
    models: Mutex<HashMap<i64, Arc<Model>>>,
    /// Refused authentications, counted for the log.
    refusals: std::sync::Arc<refusals::Refusals>,
    /// Authenticated requests per provider, counted for `provider_traffic`.
    traffic: Arc<traffic::Traffic>,
    /// LDAP binds and searches per account, counted for `ldap_traffic`.
    pub(crate) ldap_counts: Arc<crate::ldap::Counts>,
    /// Refused LDAP binds, counted for the log and the activity log.
    pub(crate) bind_refusals: Arc<crate::ldap::refusals::BindRefusals>,
    /// LDAP connections open, overall and per address, against their caps.
    pub(crate) ldap_gate: Arc<crate::ldap::gate::Gate>,
    /// Turns true when the server stops: LDAP connections (which, unlike HTTP ones, the
    /// server does not close itself) end at their next idle moment.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// Database reads on the pool for an authenticated request: the token is read again on the
    /// same connection first (`Principal::recheck`), so one pool hop both authorizes and reads.
    pub async fn read<T, E, F>(&self, principal: &auth::Principal, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Into<Error> + Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, E> + Send + 'static,
    {
        let p = principal.clone();
        let res = self
            .store
            .run(move |c| -> Result<T, Error> {
                #[cfg(debug_assertions)]
                faults::before_read(p.fault);
                p.recheck(c, false)?;
                f(c).map_err(Into::into)
            })
            .await;
        self.forget_if_refused(principal, res)
    }

    /// A write for an authenticated request, in the single writer's transaction; the token is
    /// read again inside that transaction first.
    pub async fn write<T, E, F>(&self, principal: &auth::Principal, mut f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Into<Error> + Send + 'static,
        F: FnMut(&rusqlite::Connection) -> Result<T, E> + Send + 'static,
    {
        let p = principal.clone();
        let res = self
            .store
            .write(move |c| -> Result<T, Error> {
                p.recheck(c, true)?;
                let out = f(c).map_err(Into::into);
                #[cfg(debug_assertions)]
                faults::after_write(p.fault);
                out
            })
            .await;
        self.forget_if_refused(principal, res)
    }

    fn forget_if_refused<T>(
        &self,
        principal: &auth::Principal,
        res: Result<T, Error>,
    ) -> Result<T, Error> {
        // (A stale record is dropped by `require_token` once the request is answered.)
        if matches!(res, Err(Error::Unauthorized(_))) {
            self.records.forget(&principal.token_id);
        }
        res
    }

    /// The schema model of the request's identity provider: the built-in one until the
    /// provider registers an extension or changes its unknown-attribute policy; otherwise the
    /// one built from the database for the version the token's record carries, kept until the
    /// version changes.
    pub async fn model(&self, principal: &auth::Principal) -> Result<Arc<Model>, Error> {
        let model = self.find_model(principal).await?;
        principal.used_model(model.version());
        Ok(model)
    }

    async fn find_model(&self, principal: &auth::Principal) -> Result<Arc<Model>, Error> {
        if principal.model_version == 0 {
            return Ok(self.builtin_model.clone());
        }
        let pid = principal.provider_id;
        if let Some(m) = lock(&self.models).get(&pid)
            && m.version() >= principal.model_version
        {
            return Ok(m.clone());
        }
        self.load_model(pid).await
    }

    /// `model`, made sure to know each schema URN the request names (keys of its body, PATCH
    /// paths) when the database does: a URN the model does not know costs one read of the
    /// provider's model version, so a schema registered while serving counts from the very
    /// next request that uses it.
    pub async fn model_knowing<'u>(
        &self,
        principal: &auth::Principal,
        mut urns: impl Iterator<Item = &'u str>,
    ) -> Result<Arc<Model>, Error> {
        let model = self.model(principal).await?;
        if urns.all(|u| model.knows(u)) {
            return Ok(model);
        }
        let pid = principal.provider_id;
        let current = self
            .store
            .run(move |c| crate::store::schemas::model_version(c, pid))
            .await?;
        if current == model.version() {
            return Ok(model);
        }
        let model = self.load_model(pid).await?;
        principal.used_model(model.version());
        Ok(model)
    }

    /// A provider's model at `version` (its `model_version`, read by the caller), read on the
    /// connection `c` only when the cache does not hold that version (for work already on a
    /// reader thread, such as LDAP searches).
    pub(crate) fn model_at(
        &self,
        c: &rusqlite::Connection,
        pid: i64,
        version: i64,
    ) -> crate::store::Result<Arc<Model>> {
        if version == 0 {
            return Ok(self.builtin_model.clone());
        }
        if let Some(m) = lock(&self.models).get(&pid)
            && m.version() == version
        {
            return Ok(m.clone());
        }
        let model = Arc::new(crate::store::schemas::model(c, pid)?);
        let mut models = lock(&self.models);
        if models.len() >= MODEL_CAPACITY {
            models.clear();
        }
        models.insert(pid, model.clone());
        Ok(model)
    }

    /// Builds a provider's model from the database and keeps it (the newest of any two).
    async fn load_model(&self, pid: i64) -> Result<Arc<Model>, Error> {
        let model = Arc::new(
            self.store
                .run(move |c| crate::store::schemas::model(c, pid))
                .await?,
        );
        let mut models = lock(&self.models);
        if models.len() >= MODEL_CAPACITY {
            models.clear();
        }
        let newest = models
            .entry(pid)
            .and_modify(|m| {
                if m.version() < model.version() {
                    *m = model.clone();
                }
            })
            .or_insert_with(|| model.clone());
        Ok(newest.clone())
    }

    /// Who is asking, for the request's activity records.
    pub fn activity_context(
        &self,
        principal: &auth::Principal,
        req: &HttpRequest,
    ) -> crate::store::activity::Context {
        crate::store::activity::Context {
            token_id: principal.token_id.clone(),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            method: req.method().to_string(),
            path: req.uri().to_string(),
            values: principal.activity_values,
        }
    }

    /// Notes and counts the non-standard shapes a request used.
    pub fn record_quirks(&self, req: &HttpRequest, provider: &str, used: Quirks) {
        quirks::record(&self.quirks, req, provider, used);
    }

    /// The SCIM base URL of one identity provider.
    pub fn scim_base(&self, provider: &str) -> String {
        scim_base(&self.public_base, provider)
    }
}

pub fn scim_base(public_base: &str, provider: &str) -> String {
    format!("{public_base}/scim/v2/{provider}")
}

/// `public_url` when configured; otherwise the bound address, with a wildcard address replaced
/// by loopback so the printed URL works on this machine.
pub fn public_base(config: &Config, bound: SocketAddr) -> String {
    if let Some(u) = &config.public_url {
        return u.clone();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// Binds the listener first, so callers can print the real URL (port 0 picks a free port)
/// before serving.
pub fn bind(config: &Config) -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(config.listen).with_context(|| {
        format!(
            "binding {}: is another program using the port? Choose another with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    Ok((listener, public_base(config, addr)))
}

/// Serves until SIGTERM or SIGINT, then lets requests in flight finish (up to
/// `shutdown_timeout`) and stops the background jobs.
/// Binds `admin_listen` (the admin console and /metrics), when set.
pub fn bind_admin(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    config
        .admin_listen
        .map(|a| {
            TcpListener::bind(a).with_context(|| {
                format!(
                    "binding admin_listen {a}: is another program using the port? Choose \
                     another admin_listen, or set it empty to turn the admin listener off"
                )
            })
        })
        .transpose()
}

/// The admin console's URL on a bound admin listener.
pub fn admin_url(config: &Config, listener: &TcpListener) -> String {
    let scheme = match (&config.tls_cert, &config.tls_key) {
        (Some(_), Some(_)) => "https",
        _ => "http",
    };
    match listener.local_addr() {
        Ok(a) => format!("{scheme}://{a}/"),
        Err(_) => format!("{scheme}://{:?}/", config.admin_listen),
    }
}

pub fn serve(
    config: Config,
    store: Store,
    listener: TcpListener,
    admin: Option<TcpListener>,
    public_base: String,
) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let addr = listener.local_addr()?;
        let argon2_slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        let quirk_counter = std::sync::Arc::new(QuirkCounter::default());
        let refusals = std::sync::Arc::new(refusals::Refusals::default());
        let traffic = Arc::new(traffic::Traffic::default());
        let ldap_counts = Arc::new(crate::ldap::Counts::default());
        let bind_refusals = Arc::new(crate::ldap::refusals::BindRefusals::default());
        let (stop_ldap, stopping) = tokio::sync::watch::channel(false);
        let state = web::Data::new(AppState {
            store: store.clone(),
            verifier: Verifier::new(argon2_slots),
            public_base: public_base.clone(),
            config: config.clone(),
            quirks: quirk_counter.clone(),
            records: auth::RecordCache::default(),
            builtin_model: Arc::new(Model::builtin().clone()),
            models: Mutex::default(),
            traffic: traffic.clone(),
            refusals: refusals.clone(),
            ldap_counts: ldap_counts.clone(),
            bind_refusals: bind_refusals.clone(),
            ldap_gate: Arc::new(crate::ldap::gate::Gate::new(
                config.ldap_max_connections,
                config.ldap_max_connections_per_address,
                crate::ldap::gate::raise_open_files_limit(),
            )),
            stopping,
        });
        let app_state = state.clone();
        if admin.is_some() {
            metrics::install().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            actix_web::rt::spawn(async {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    metrics::upkeep();
                }
            });
        }
        let send_timeout = config.send_timeout;
        let resolver = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(
                tls::Resolver::new(cert, key).map_err(|e| anyhow::anyhow!(e))?,
            )),
            _ => None,
        };
        let acceptor = resolver
            .clone()
            .map(tls::acceptor)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut ldap_listeners = Vec::new();
        for (listen, implicit) in [(config.ldap_listen, false), (config.ldaps_listen, true)] {
            let Some(a) = listen else { continue };
            let key = if implicit { "ldaps_listen" } else { "ldap_listen" };
            let listener = TcpListener::bind(a).with_context(|| {
                format!(
                    "binding {key} {a}: is another program using the port? Choose another \
                     address, or set {key} empty to turn it off"
                )
            })?;
            let bound = listener.local_addr()?;
            let scheme = if implicit { "ldaps" } else { "ldap" };
            tracing::info!(addr = %bound, "LDAP directory on {scheme}://{bound}");
            ldap_listeners.push((listener, implicit));
        }
        let admin_acceptor = acceptor.clone();
        let ldap_acceptor = acceptor.clone();
        // actix-web's HttpServer, built by hand so each connection's stream can be wrapped
        // (`conn::Conn`); the settings are HttpServer's defaults.
        let server = actix_server::Server::build()
            .disable_signals()
            .shutdown_timeout(config.shutdown_timeout.as_secs())
            .listen("scim", listener, move || {
                let app = app(app_state.clone())
                    .into_factory()
                    .map_err(|e| e.error_response());
                let acceptor = acceptor.clone();
                actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| {
                    accept(acceptor.clone(), io, send_timeout)
                })
                .and_then(
                    actix_http::HttpService::build()
                        .client_request_timeout(std::time::Duration::from_secs(5))
                        .client_disconnect_timeout(std::time::Duration::from_secs(1))
                        .local_addr(addr)
                        .h1(actix_service::map_config(app, |()| {
                            actix_web::dev::AppConfig::default()
                        })),
                )
            })?;
        let server = match admin {
            None => server,
            Some(listener) => {
                let admin_addr = listener.local_addr()?;
                let admin_state = state.clone();
                let console = web::Data::new(crate::console::Console::default());
                let scheme = if admin_acceptor.is_some() { "https" } else { "http" };
                tracing::info!(addr = %admin_addr, "admin console and /metrics on {scheme}://{admin_addr}/");
                server.listen("admin", listener, move || {
                    let app = App::new()
                        .app_data(admin_state.clone())
                        .app_data(console.clone())
                        .app_data(web::FormConfig::default().limit(1 << 20))
                        .route("/metrics", web::get().to(metrics::scrape))
                        .configure(crate::console::routes)
                        .default_service(web::to(crate::console::not_found))
                        .wrap(actix_web::middleware::from_fn(crate::console::guard))
                        .into_factory()
                        .map_err(|e| e.error_response());
                    let acceptor = admin_acceptor.clone();
                    actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| {
                        accept(acceptor.clone(), io, send_timeout)
                    })
                    .and_then(
                        actix_http::HttpService::build()
                            .client_request_timeout(std::time::Duration::from_secs(5))
                            .h1(actix_service::map_config(app, |()| {
                                actix_web::dev::AppConfig::default()
                            })),
                    )
                })?
            }
        };
        // LDAP connections are served by the same worker threads as HTTP.
        let mut server = server;
        for (listener, implicit) in ldap_listeners {
            let (state, acceptor) = (state.clone(), ldap_acceptor.clone());
            let name = if implicit { "ldaps" } else { "ldap" };
            server = server.listen(name, listener, move || {
                let (state, acceptor) = (state.clone(), acceptor.clone());
                actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| {
                    crate::ldap::accept(io, state.clone(), acceptor.clone(), implicit)
                })
            })?;
        }
        let server = server.run();
        let handle = server.handle();
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let cleanup = actix_web::rt::spawn(jobs::cleanup_loop(
            store,
            config.clone(),
            quirk_counter,
            jobs_stopped,
        ));
        let (totals, counted, flush_store, ldap_counted, binds) = (
            refusals.clone(),
            traffic.clone(),
            state.store.clone(),
            ldap_counts.clone(),
            bind_refusals.clone(),
        );
        let interval = config.activity_interval;
        let refusal_totals = actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                flush_counts(&flush_store, &totals, &counted, &ldap_counted, &binds).await;
            }
        });
        if let Some(r) = resolver.clone() {
            actix_web::rt::spawn(watch_certificate(r));
        }
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            notify(sd_notify::NotifyState::Stopping);
            let _ = stop_ldap.send(true);
            handle.stop(true).await;
        });
        // Migrations ran (the store is open) and the socket is bound: ready for systemd.
        notify(sd_notify::NotifyState::Ready);
        let mut watchdog_usec = 0;
        if sd_notify::watchdog_enabled(false, &mut watchdog_usec) {
            actix_web::rt::spawn(watchdog(state.store.clone(), watchdog_usec));
        }
        let served = public_base.clone();
        if let Err(e) = state
            .store
            .write(move |c| crate::store::set_served_url(c, &served))
            .await
        {
            tracing::warn!(error = %e, "could not record the public URL for the command line");
        }
        tracing::info!(%addr, "listening on {public_base}");
        server.await?;
        let _ = stop_jobs.send(true);
        let _ = cleanup.await;
        refusal_totals.abort();
        flush_counts(
            &state.store,
            &refusals,
            &traffic,
            &ldap_counts,
            &bind_refusals,
        )
        .await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// A new connection's stream: after the TLS handshake when TLS is on, wrapped in `Conn`.
async fn accept(
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    io: actix_web::rt::net::TcpStream,
    send_timeout: std::time::Duration,
) -> Result<(conn::Conn<tls::Stream>, Option<SocketAddr>), actix_http::error::DispatchError> {
    let peer = io.peer_addr().ok();
    let stream = match acceptor {
        None => tls::Stream::Plain(io),
        Some(a) => {
            let handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, a.accept(io));
            let tls = handshake
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                .and_then(|r| r)
                .map_err(actix_http::error::DispatchError::Io)?;
            tls::Stream::Tls(Box::new(tls))
        }
    };
    Ok((conn::Conn::new(stream, send_timeout), peer))
}

/// The address a request came from, as `trusted_proxies` lets it be known.
pub(crate) fn client_ip(req: &HttpRequest, config: &Config) -> Option<std::net::IpAddr> {
    auth::client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers().get_all("x-forwarded-for"),
        &config.trusted_proxies,
    )
}

/// Logs the refused authentications of the interval and writes them, with the requests
/// counted per provider, to the activity tables.
async fn flush_counts(
    store: &Store,
    refusals: &refusals::Refusals,
    traffic: &traffic::Traffic,
    ldap: &crate::ldap::Counts,
    binds: &crate::ldap::refusals::BindRefusals,
) {
    let refused = refusals.log_totals();
    let counted = traffic.take();
    let ldap_counted = ldap.take();
    let binds = crate::ldap::refusals::records(binds.take());
    if refused.is_empty() && counted.is_empty() && ldap_counted.is_empty() && binds.is_empty() {
        return;
    }
    let res = store
        .write(move |c| -> crate::store::Result<()> {
            crate::store::activity::record_auth_failures(c, &refused)?;
            crate::store::activity::record_bind_refusals(c, &binds)?;
            crate::store::activity::add_traffic(c, &counted)?;
            crate::store::ldap_accounts::add_traffic(c, &ldap_counted)
        })
        .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "could not write the interval's counts to the activity log");
    }
}

/// Reads the certificate and key again on SIGHUP (new handshakes get the new certificate; open
/// connections keep theirs), and warns once a day, and after each reload, while the certificate
/// expires within 14 days.
async fn watch_certificate(resolver: Arc<tls::Resolver>) {
    use tokio::signal::unix::{SignalKind, signal};
    let warn_if_expiring = |not_after: Option<chrono::DateTime<chrono::Utc>>| {
        if let Some(at) = not_after {
            let left = at - chrono::Utc::now();
            if left <= chrono::Duration::zero() {
                tracing::error!(
                    expired = %at.to_rfc3339(),
                    "the TLS certificate has expired: verifying clients refuse it; renew it, \
                     then send SIGHUP (systemctl reload scimd)"
                );
            } else if left < chrono::Duration::days(14) {
                tracing::warn!(
                    expires = %at.to_rfc3339(),
                    "the TLS certificate expires in {} days: renew it, then send SIGHUP \
                     (systemctl reload scimd)",
                    left.num_days()
                );
            }
        }
    };
    warn_if_expiring(resolver.not_after());
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not be reloaded");
        return;
    };
    let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
    daily.tick().await;
    loop {
        tokio::select! {
            _ = hangup.recv() => match resolver.reload(chrono::Utc::now()) {
                Ok(not_after) => {
                    tracing::info!(
                        expires = %not_after.map(|d| d.to_rfc3339()).unwrap_or_default(),
                        "SIGHUP: TLS certificate reloaded"
                    );
                    warn_if_expiring(not_after);
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: the TLS certificate was not reloaded; the one in use stays"
                ),
            },
            _ = daily.tick() => warn_if_expiring(resolver.not_after()),
        }
    }
}

/// Tells systemd (`Type=notify`) about a state change; nothing without `NOTIFY_SOCKET`.
fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Pings systemd's watchdog twice per `WatchdogSec` while the store's threads are alive: a
/// stuck or vanished writer stops the pings, and systemd restarts the service. A writer that
/// only fails (a full disk) keeps them going, since a restart would not help.
async fn watchdog(store: Store, usec: u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_micros(usec / 2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let health = store.health().await;
        if health.is_alive() {
            notify(sd_notify::NotifyState::Watchdog);
        } else {
            tracing::error!(
                writer = ?health.writer,
                readers = ?health.readers,
                "not pinging systemd's watchdog: the store is not alive"
            );
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot listen for SIGTERM/SIGINT; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The application: every route, with SCIM errors for anything unmatched.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.max_body_size;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(limit))
        .wrap(from_fn(admit))
        .wrap(from_fn(access_log))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .service(
            web::scope("/scim/v2/{provider}")
                .wrap(from_fn(auth::require_token))
                // Users and Groups first: the router tries routes in order, and each route with
                // a {segment} costs a regular-expression match (14k instructions) when tried.
                .service(resources::services(ResourceKind::User))
                .service(resources::services(ResourceKind::Group))
                .service(discovery::services())
                .service(
                    web::resource("/.search")
                        .route(web::post().to(resources::search_all))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found))
}

/// Liveness: `200` while the writer and the readers are there and moving, even if writes
/// fail for a reason a restart would not fix (a full disk); `503` naming the part that is gone
/// or stuck, so systemd or an orchestrator restarts the process.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health().await;
    health_answer(&health, health.is_alive())
}

/// Readiness: `200` while writes can commit and reads answer; `503` naming the part that
/// cannot (`"writer":"failing: the disk is full ..."`), so a load balancer stops sending
/// traffic to a server that can no longer write.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let health = state.store.health().await;
    health_answer(&health, health.is_ok())
}

fn health_answer(health: &crate::store::Health, ok: bool) -> HttpResponse {
    if ok {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ok"}"#);
    }
    // What failed is logged where it failed (the writer, at most once a minute).
    tracing::debug!(writer = ?health.writer, readers = ?health.readers, "health check failed");
    let mut body = serde_json::json!({"status": "unavailable"});
    if let Some(w) = &health.writer {
        body["writer"] = w.as_str().into();
    }
    if let Some(r) = &health.readers {
        body["readers"] = r.as_str().into();
    }
    HttpResponse::ServiceUnavailable()
        .content_type("application/json")
        .insert_header((header::RETRY_AFTER, "1"))
        .body(body.to_string())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, Error> {
    let path = req.path();
    // Quoted back, but not at any length.
    let shown = match path.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &path[..cut]),
        None => path.to_string(),
    };
    Err(Error::NotFound(format!("no endpoint at {shown}")))
}

/// A method the endpoint does not answer: 405 with the SCIM error body.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::MethodNotAllowed(req.method().to_string()))
}

/// Before routing: refuses a request target over `MAX_TARGET` bytes (`414`) and a body whose
/// declared length is over the limit before reading any of it (`413`); spells endpoint names as
/// RFC 7644 does and drops a trailing slash (`paths::canonical`).
async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > crate::error::MAX_TARGET {
        return Err(Error::UriTooLong(target).into());
    }
    if let Some(path) = paths::canonical(req.path()) {
        let target = match req.query_string() {
            "" => path,
            query => format!("{path}?{query}"),
        };
        let mut parts = req.head().uri.clone().into_parts();
        parts.path_and_query = target.parse().ok();
        if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(usize::MAX, |s| s.config.max_body_size);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge(limit).into());
    }
    next.call(req).await
}

/// One line per request: provider, method, path, status, latency and token id — never a secret.
/// The id of a request: the client's `X-Request-Id` when it is a plausible one, else one made
/// here; echoed in the response and kept in the access log and the activity log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn of(req: &ServiceRequest) -> RequestId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static PREFIX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!("{:08x}", chrono::Utc::now().timestamp_millis() as u32)
        });
        let given = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                    })
            });
        match given {
            Some(v) => RequestId(v.to_string()),
            None => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                RequestId(format!("{}-{n:x}", *PREFIX))
            }
        }
    }
}

/// Marks a list request that was Entra's Test Connection (see `store::activity`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTest;

async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let request_id = RequestId::of(&req);
    req.extensions_mut().insert(request_id.clone());
    let body_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    // Kept as it is (a reference count), read only if the request is refused.
    let presented = req.headers().get(header::AUTHORIZATION).cloned();
    let method = req.method().clone();
    let path = req.path().to_string();
    let provider = path
        .strip_prefix("/scim/v2/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("-")
        .to_string();
    let mut res = next.call(req).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(r) = &mut res
        && let Ok(v) = header::HeaderValue::from_str(&request_id.0)
    {
        r.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), v);
    }
    if let (Some(state), Ok(r)) = (&state, &res) {
        record_activity(state, r, body_bytes).await;
    }
    let (status, token, quirk_names) = match &res {
        Ok(res) => (
            res.status().as_u16(),
            res.request()
                .extensions()
                .get::<auth::TokenId>()
                .map_or_else(|| "-".to_string(), |t| t.0.clone()),
            quirks::names(res.request()),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            "-".to_string(),
            "-".to_string(),
        ),
    };
    {
        let ext = res.as_ref().ok().map(|r| r.request().extensions());
        let provider = ext
            .as_ref()
            .and_then(|e| e.get::<auth::Principal>())
            .map_or("-", |p| p.provider_name.as_str());
        metrics::request(
            provider,
            method_label(&method),
            &path,
            status,
            latency_ms / 1000.0,
        );
    }
    if let (401 | 429, Some(state), Err(e)) = (status, &state, &res) {
        let token = presented
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .and_then(|(_, t)| crate::auth::token::parse(t.trim()).map(|(id, _)| id.to_string()));
        let token = token.as_deref().unwrap_or("-");
        state
            .refusals
            .count(&provider, token, status, &e.to_string());
        return res;
    }
    tracing::info!(
        provider = %provider,
        method = %method,
        path = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        token = %token,
        quirks = %quirk_names,
        request_id = %request_id.0,
        "request"
    );
    res
}

/// The method as a metrics label, from a fixed set.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Counts an authenticated request for its provider, and records it in the activity log when
/// it was refused (4xx or 5xx) or was Entra's Test Connection. Changes record themselves, in
/// their own transaction.
async fn record_activity<B>(state: &AppState, res: &ServiceResponse<B>, body_bytes: Option<i64>) {
    let req = res.request();
    let status = res.status().as_u16();
    let connection_test = {
        let ext = req.extensions();
        let Some(principal) = ext.get::<auth::Principal>() else {
            return;
        };
        state.traffic.count(
            &principal.provider_name,
            chrono::Utc::now().timestamp_millis(),
        );
        ext.get::<ConnectionTest>().is_some()
    };
    if status < 400 && !connection_test {
        return;
    }
    let Some(principal) = req.extensions().get::<auth::Principal>().cloned() else {
        return;
    };
    let error = res.response().error().and_then(|e| e.as_error::<Error>());
    // `/scim/v2/{provider}/{Users|Groups}/{id}`
    let mut segments = req.path().split('/').skip(4);
    let kind = segments.next().and_then(|e| {
        [ResourceKind::User, ResourceKind::Group]
            .into_iter()
            .find(|k| k.endpoint() == e)
    });
    let resource_id = segments
        .next()
        .filter(|id| kind.is_some() && !id.starts_with('.'))
        .map(str::to_string);
    let refusal = crate::store::activity::Refusal {
        status,
        scim_type: error.and_then(|e| e.scim_type()).map(str::to_string),
        detail: error.map(|e| e.detail()),
        body_bytes,
        kind,
        resource_id,
        connection_test,
    };
    let ctx = state.activity_context(&principal, req);
    let pid = principal.provider_id;
    let store = state.store.clone();
    let recorded = async move {
        let write = store
            .write(move |c| crate::store::activity::record_refusal(c, pid, &ctx, &refusal))
            .await;
        if let Err(e) = write {
            tracing::debug!(error = %e, "could not record a refused request in the activity log");
        }
    };
    // A server error may come from the writer itself: its record must not hold the answer.
    if status >= 500 {
        actix_web::rt::spawn(recorded);
    } else {
        recorded.await;
    }
}
