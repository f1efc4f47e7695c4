//! What the server test files share: a server running on its own thread and runtime.

pub mod any_store;
pub mod client;
pub mod otlp_json;

use spanlens_server::{serve, Bound, ServerConfig};
use spanlens_store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A loopback configuration on free ports over `data_dir`, without alerts or evaluators.
pub fn local_config(data_dir: &Path) -> ServerConfig {
    ServerConfig {
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_path_buf(),
        ..ServerConfig::default()
    }
}

/// `serve` on its own thread; stopped (gracefully, waiting for the thread) by [`Running::stop`]
/// or on drop.
pub struct Running {
    /// Where it listens.
    pub bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts serving `store` with `config` and returns once both listeners are bound.
    pub fn start(config: ServerConfig, store: Arc<dyn Store>) -> Running {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(serve(
                &config,
                store,
                async {
                    let _ = stop_rx.await;
                },
                move |b| bound_tx.send(b).unwrap(),
            ))
            .unwrap();
        });
        Running {
            bound: bound_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Shuts the server down and waits for it; doing it again does nothing.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
