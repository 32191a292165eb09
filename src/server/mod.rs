//! The composition root: binds the listeners, builds the core (`app::AppState`) and each
//! front door over it (the SCIM API from `http`, the admin console and `/metrics` on
//! `admin_listen`, the LDAP directory), and runs the jobs (token cleanup, the search index, the counters'
//! flush, metrics upkeep, certificate reloads on SIGHUP), signals and systemd notifications
//! until the server stops.

mod conn;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::{App, web};
use anyhow::Context;

use crate::app::AppState;
use crate::config::Config;
use crate::store::Store;
use crate::{console, http, jobs, ldap, tls};

/// `public_url` when configured; otherwise the bound address, with a wildcard address replaced
/// by loopback so the printed URL works on this machine.
pub(crate) fn public_base(config: &Config, bound: SocketAddr) -> String {
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
pub(crate) fn bind(config: &Config) -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(config.listen).with_context(|| {
        format!(
            "binding {}: is another program using the port? Choose another with --listen \
             (or SCIMD_LISTEN, or listen in the configuration file)",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    Ok((listener, public_base(config, addr)))
}

/// Binds `admin_listen` (the admin console and /metrics), when set.
pub(crate) fn bind_admin(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    config
        .admin_listen
        .map(|a| {
            TcpListener::bind(a).with_context(|| {
                format!(
                    "binding admin_listen {a} (the admin console and /metrics): is another \
                     program using the port? Choose another with --admin-listen 127.0.0.1:8091 \
                     (or SCIMD_ADMIN_LISTEN, or admin_listen in the configuration file), or \
                     turn the admin listener off with --admin-listen ''"
                )
            })
        })
        .transpose()
}

/// The admin console's URL on a bound admin listener.
pub(crate) fn admin_url(config: &Config, listener: &TcpListener) -> String {
    let scheme = match (&config.tls_cert, &config.tls_key) {
        (Some(_), Some(_)) => "https",
        _ => "http",
    };
    match listener.local_addr() {
        Ok(a) => format!("{scheme}://{a}/"),
        Err(_) => format!("{scheme}://{:?}/", config.admin_listen),
    }
}

/// Serves until SIGTERM or SIGINT, then lets requests in flight finish (up to
/// `shutdown_timeout`) and stops the background jobs.
pub(crate) fn serve(
    mut config: Config,
    store: Store,
    listener: TcpListener,
    admin: Option<TcpListener>,
    public_base: String,
) -> anyhow::Result<()> {
    // Without `console_url`, the console is where its listener is bound (its real port, also
    // when `admin_listen` asked for port 0).
    if let (None, Some(a)) = (&config.console_url, &admin) {
        config.console_url = Some(admin_url(&config, a).trim_end_matches('/').to_string());
    }
    actix_web::rt::System::new().block_on(async move {
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState::new(config.clone(), store, public_base.clone()));
        if admin.is_some() {
            http::metrics::install().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            actix_web::rt::spawn(async {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    http::metrics::upkeep();
                }
            });
        }
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
        let ldap_listeners = bind_ldap(&config)?;
        let (stop_ldap, stopping) = tokio::sync::watch::channel(false);
        let server = actix_server::Server::build()
            .disable_signals()
            .shutdown_timeout(config.shutdown_timeout.as_secs());
        let server = listen_scim(server, listener, &state, acceptor.clone())?;
        let server = match admin {
            None => server,
            Some(listener) => listen_admin(server, listener, &state, acceptor.clone())?,
        };
        // LDAP connections are served by the same worker threads as HTTP.
        let mut server = server;
        if !ldap_listeners.is_empty() {
            let door = Arc::new(ldap::Door::new(state.clone(), acceptor.clone(), stopping));
            for (listener, implicit) in ldap_listeners {
                let door = door.clone();
                let name = if implicit { "ldaps" } else { "ldap" };
                server = server.listen(name, listener, move || {
                    let door = door.clone();
                    actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| {
                        ldap::accept(io, door.clone(), implicit)
                    })
                })?;
            }
        }
        let server = server.run();
        let handle = server.handle();
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let indexing = actix_web::rt::spawn(jobs::text_index_loop(
            state.store.clone(),
            jobs_stopped.clone(),
        ));
        let delivering =
            actix_web::rt::spawn(crate::feed::run(state.clone(), jobs_stopped.clone()));
        let cleanup = actix_web::rt::spawn(jobs::cleanup_loop(state.clone(), jobs_stopped));
        let flushed = state.clone();
        let interval = config.activity_interval;
        let counts = actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                flushed.counters.flush(&flushed.store).await;
            }
        });
        if let Some(r) = resolver.clone() {
            actix_web::rt::spawn(watch_certificate(r));
        }
        let stopping = state.clone();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            stopping
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
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
        let _ = indexing.await;
        let _ = delivering.await;
        counts.abort();
        state.counters.flush(&state.store).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Binds `ldap_listen` and `ldaps_listen` (true: LDAPS), those that are set.
fn bind_ldap(config: &Config) -> anyhow::Result<Vec<(TcpListener, bool)>> {
    let mut listeners = Vec::new();
    for (listen, implicit) in [(config.ldap_listen, false), (config.ldaps_listen, true)] {
        let Some(a) = listen else { continue };
        let key = if implicit {
            "ldaps_listen"
        } else {
            "ldap_listen"
        };
        let listener = TcpListener::bind(a).with_context(|| {
            format!(
                "binding {key} {a}: is another program using the port? Choose another \
                 address, or set {key} empty to turn it off"
            )
        })?;
        let bound = listener.local_addr()?;
        let scheme = if implicit { "ldaps" } else { "ldap" };
        tracing::info!(addr = %bound, "LDAP directory on {scheme}://{bound}");
        listeners.push((listener, implicit));
    }
    Ok(listeners)
}

/// The SCIM API on `listen`: actix-web's HttpServer, built by hand so each connection's stream
/// can be wrapped (`conn::Conn`); the settings are HttpServer's defaults.
fn listen_scim(
    server: actix_server::ServerBuilder,
    listener: TcpListener,
    state: &Arc<AppState>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<actix_server::ServerBuilder> {
    let addr = listener.local_addr()?;
    let send_timeout = state.config.send_timeout;
    let state = web::Data::from(state.clone());
    Ok(server.listen("scim", listener, move || {
        let app = http::app(state.clone())
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
    })?)
}

/// The admin console and `/metrics` on `admin_listen`.
fn listen_admin(
    server: actix_server::ServerBuilder,
    listener: TcpListener,
    state: &Arc<AppState>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<actix_server::ServerBuilder> {
    let admin_addr = listener.local_addr()?;
    let send_timeout = state.config.send_timeout;
    let state = web::Data::from(state.clone());
    let console = web::Data::new(console::Console::default());
    let sign_ins = web::Data::new(console::SignIns::default());
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(addr = %admin_addr, "admin console and /metrics on {scheme}://{admin_addr}/");
    Ok(server.listen("admin", listener, move || {
        let app = App::new()
            .app_data(state.clone())
            .app_data(console.clone())
            .app_data(sign_ins.clone())
            .app_data(web::FormConfig::default().limit(1 << 20))
            .route("/metrics", web::get().to(http::metrics::scrape))
            .configure(console::routes)
            .default_service(web::to(console::not_found))
            .wrap(actix_web::middleware::from_fn(console::guard))
            .into_factory()
            .map_err(|e| e.error_response());
        let acceptor = acceptor.clone();
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
    })?)
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
