//! For tests of code that must not connect: a loopback listener that tells whether anything did.
//! The refused target is always this listener (on loopback, which the default policy refuses), so
//! a test never dials another range even when the check it proves is broken.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

/// A loopback listener that accepts nothing yet, non-blocking: the kernel completes a handshake
/// before `connect` returns, so [`nothing_connected`] says at once whether anything connected.
pub fn quiet_listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    listener.set_nonblocking(true).expect("non-blocking");
    listener
}

/// Whether no connection has reached `listener` (made by [`quiet_listener`]).
pub fn nothing_connected(listener: &TcpListener) -> bool {
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// From now on, accepts (and drops) connections to `listener`, counting them.
pub fn count_accepts(listener: TcpListener) -> Arc<AtomicUsize> {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    seen
}
