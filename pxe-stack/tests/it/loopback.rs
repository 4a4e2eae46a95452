//! What the tests of the servers on 127.0.0.1 (http, tftp) share: the server on a thread of its
//! own, the one host that loopback stands for, and file contents that show where bytes went.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::thread::JoinHandle;

use pxe_stack::{HostLookup, Mac};
use tokio::sync::oneshot;

/// A server running on a thread of its own, in a runtime of its own, until it is dropped.
pub(crate) struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Builds a runtime from `runtime` on a new thread and runs `serve(shutdown)` on it; an error
    /// from the server panics that thread.
    pub(crate) fn spawn<F, Fut, E>(mut runtime: tokio::runtime::Builder, serve: F) -> Background
    where
        F: FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Debug,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = runtime.enable_all().build().unwrap();
            rt.block_on(async move {
                let shutdown = Box::pin(async {
                    let _ = rx.await;
                });
                serve(shutdown).await.unwrap();
            });
        });
        Background {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    /// Tells the server to stop and waits until it has. A server that failed fails the test,
    /// unless the test is failing already.
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let failed = self.thread.take().is_some_and(|t| t.join().is_err());
        if failed && !std::thread::panicking() {
            panic!("the server failed");
        }
    }
}

/// A lookup that gives every loopback address the one MAC address it holds.
pub(crate) struct OneHost(pub(crate) Mac);

impl HostLookup for OneHost {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        addr.is_loopback().then_some(self.0)
    }
    fn addr_for(&self, _mac: Mac) -> Option<IpAddr> {
        None
    }
}

/// `len` bytes of a 256-byte cycle that shifts by one every 251 bytes, so that a block served
/// from the wrong offset does not match.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
