//! The switchboard: signaling (axum WebSocket), the ACD core, the media bridge (str0m on one
//! UDP port) and the store, started together by [`start`] and stopped by [`Running::shutdown`].
//!
//! `sapa switchboard` calls `start` from `main`; tests and the demo embed it the same way with
//! port 0, so everything here is testable without the binary.

pub mod core;
pub mod http;
pub mod media;
pub mod quality;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::SwitchboardConfig;
use crate::sounds::SoundBank;
use crate::store::Store;

/// Errors starting the switchboard.
#[derive(Debug, thiserror::Error)]
pub enum SwitchboardError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot prepare sounds: {0}")]
    Sounds(#[from] opus::Error),
}

/// Where to listen and what to run with.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub media_listen: SocketAddr,
    pub db_url: String,
    pub config: SwitchboardConfig,
}

/// A started switchboard.
pub struct Running {
    pub http_addr: SocketAddr,
    pub media_addr: SocketAddr,
    pub store: Store,
    media: media::MediaHandle,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// The WebSocket URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.http_addr)
    }

    /// Counters of the media bridge (packets in, forwarded, sounds sent).
    pub async fn media_stats(&self) -> Option<media::MediaStats> {
        self.media.stats().await.ok()
    }

    /// Stops accepting, closes connections, lets the core log every agent out, and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        drop(self.media);
        for task in self.tasks {
            let _ = task.await;
        }
        self.store.close().await;
    }
}

/// Opens the store, binds both sockets, and starts the tasks.
pub async fn start(options: Options) -> Result<Running, SwitchboardError> {
    let store = Store::open(&options.db_url).await?;
    let sounds = Arc::new(SoundBank::load()?);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| SwitchboardError::Listen {
            addr: options.listen,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| SwitchboardError::Listen {
            addr: options.listen,
            source,
        })?;
    let udp = media::bind(options.media_listen)
        .await
        .map_err(|e| SwitchboardError::Listen {
            addr: options.media_listen,
            source: std::io::Error::other(e.to_string()),
        })?;
    let media_addr = udp
        .local_addr()
        .map_err(|source| SwitchboardError::Listen {
            addr: options.media_listen,
            source,
        })?;
    // ICE needs a concrete address in the answer; an unspecified bind advertises loopback
    // unless the operator names a public address (see `--media-listen`).
    let candidate_addr = if media_addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), media_addr.port())
    } else {
        media_addr
    };
    let (media, mut media_events, media_task) = media::spawn(udp, candidate_addr, sounds);
    let (core_tx, core_rx) = mpsc::unbounded_channel();
    let core = core::Core::new(options.config.clone(), store.clone(), media.clone());
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let core_task = tokio::spawn(core.run(core_rx, shutdown_rx.clone()));
    let forward_tx = core_tx.clone();
    let forward_task = tokio::spawn(async move {
        while let Some(event) = media_events.recv().await {
            if forward_tx.send(core::CoreInput::Media(event)).is_err() {
                break;
            }
        }
    });
    let state = http::HttpState::new(core_tx, store.clone(), shutdown_rx.clone());
    let mut shutdown_rx = shutdown_rx;
    let app = http::router(state);
    let http_task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown_rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    tracing::info!("switchboard listening: signaling http://{http_addr}, media udp {media_addr}");
    // On shutdown the core logs everyone out and ends; dropping its media handle (the last
    // one) ends the media task, which closes the event channel and ends the forwarder.
    Ok(Running {
        http_addr,
        media_addr,
        store,
        media,
        shutdown,
        tasks: vec![http_task, core_task, forward_task, media_task],
    })
}
