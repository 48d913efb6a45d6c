//! Starting and stopping the server: logging, database, migrations, keys, background tasks,
//! graceful shutdown on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::Keys;
use crate::http::{self, AppState};
use crate::jobs;
use crate::mail::Mailer;
use crate::store::Db;

/// Connects, migrates and builds the state a server (or a CLI command) needs.
pub async fn build_state(settings: Settings) -> Result<AppState, String> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let (keys, generated) =
        Keys::load_or_generate(settings.master_key.as_deref(), &settings.data_dir)
            .map_err(|e| e.to_string())?;
    let keys = match settings.master_key_previous.as_deref() {
        Some(text) => {
            let previous = crate::crypto::parse_master_key(text)
                .map_err(|e| format!("KEYGATE_MASTER_KEY_PREVIOUS: {e}"))?;
            keys.with_previous(&previous)
        }
        None => keys,
    };
    if generated {
        tracing::warn!(
            path = %settings.data_dir.join("master.key").display(),
            "generated a new master key; production must set KEYGATE_MASTER_KEY and keep it safe"
        );
    }
    let db = Db::connect(&settings.database_url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    db.migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    let mailer = Arc::new(Mailer::from_settings(&settings)?);
    Ok(AppState {
        db,
        settings: Arc::new(settings),
        keys: Arc::new(keys),
        mail: Arc::new(crate::mail::MailQueue::start(mailer.clone())),
        mailer,
        edge_wakeup: Arc::new(tokio::sync::Notify::new()),
    })
}

/// Runs the server until Ctrl-C or SIGTERM, then drains in-flight requests.
pub async fn serve(settings: Settings) -> Result<(), String> {
    let listen = settings.listen;
    let state = build_state(settings).await?;
    tracing::info!(settings = ?state.settings, "starting keygate");
    // Gateway secrets whose edge copy does not open with this edge secret (set or changed
    // since) are sealed again, so the edge never has to fall back or refuse.
    let edge_secret = state.settings.edge_secret.as_deref();
    let resealed =
        crate::jobs::gateway_secrets::reseal_for_edge(&state.db, &state.keys, edge_secret);
    if let Err(e) = resealed.await {
        tracing::warn!(error = %e, "could not check the gateway secrets' edge copies");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // The line tests and scripts wait for; keep its shape.
    println!("keygate listening on http://{local}");
    tracing::info!(%local, database = state.db.backend(), "listening");
    let db = state.db.clone();
    let mail = state.mail.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deliverer = tokio::spawn(jobs::deliverer::run(
        state.db.clone(),
        state.settings.clone(),
        state.edge_wakeup.clone(),
        stop_rx.clone(),
    ));
    let sweeper = tokio::spawn(jobs::retention::run(state.db.clone(), stop_rx.clone()));
    let otp_sweeper = tokio::spawn(jobs::retention::run_otp_sweeper(
        state.db.clone(),
        jobs::retention::SWEEP_INTERVAL,
        stop_rx.clone(),
    ));
    let link_token_sweeper = tokio::spawn(jobs::link_tokens::run(
        state.db.clone(),
        jobs::link_tokens::SWEEP_INTERVAL,
        stop_rx,
    ));
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    let _ = stop_tx.send(true);
    let _ = deliverer.await;
    let _ = sweeper.await;
    let _ = otp_sweeper.await;
    let _ = link_token_sweeper.await;
    // The last verify statistics, summed since the last flush, are written.
    jobs::verify_stats::flushed().await;
    // Codes already promised go out, unless the mail server hangs.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), mail.flushed()).await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
