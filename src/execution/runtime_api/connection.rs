//! The Runtime API's TCP connections: who may connect, and immediate acknowledgements
//! for streamed bodies.
//!
//! Who may connect: on loopback (the process backend, Docker's host network) any local
//! process can reach the listener, as any process of the same user can reach the
//! runtime's own processes; the port is random and the emulator trusts its host. On a
//! Docker bridge the listener is at the network's gateway, reachable from every container
//! on that network (a testcontainers database, another emulator's environments): there a
//! connection is accepted only from the environment's own container address, so no other
//! container can take its invocations. A connection from elsewhere is closed at once.
//!
//! `lambda_runtime`'s HTTP client leaves Nagle's algorithm on, so after sending the headers
//! of a streamed `/response` it holds each small chunk until its previous segment is
//! acknowledged; Linux delays that ACK by up to 40 ms on a request/response connection.
//! Measured: the first chunk of a stream reached the emulator ~47 ms after it was written.
//! Setting `TCP_QUICKACK` after each read of a streamed body sends the ACK at once (the
//! option is not sticky, hence after every read). Only streamed bodies do this, so the
//! buffered invoke path pays nothing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a connection to a non-loopback listener waits for the environment's address
/// to be known (a container's is read right after it starts): Lambda's init limit.
const PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The open connections of one environment's Runtime API (usually one or two).
#[derive(Debug)]
pub(crate) struct Connections {
    /// Raw fds of open connections. A connection removes itself under this lock before
    /// its socket closes, so an fd found here is always open.
    fds: Mutex<Vec<RawFd>>,
    /// The environment's own address, once known: the only peer a non-loopback listener
    /// admits.
    peer: watch::Sender<Option<IpAddr>>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            fds: Mutex::default(),
            peer: watch::Sender::new(None),
        }
    }
}

impl Connections {
    /// Admits connections from `address` only (listeners off loopback).
    pub(crate) fn admit_only(&self, address: IpAddr) {
        self.peer.send_replace(Some(address));
    }

    /// Whether a connection from `peer` to a listener at `local` may be served.
    async fn admits(&self, local: IpAddr, peer: IpAddr) -> bool {
        if local.is_loopback() {
            return true;
        }
        let mut known = self.peer.subscribe();
        match tokio::time::timeout(PEER_WAIT, known.wait_for(Option::is_some)).await {
            Ok(Ok(address)) => *address == Some(peer),
            _ => false,
        }
    }

    fn fds(&self) -> std::sync::MutexGuard<'_, Vec<RawFd>> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Acknowledges everything received so far on every connection, now.
    pub(crate) fn acknowledge_now(&self) {
        #[cfg(target_os = "linux")]
        for fd in self.fds().iter() {
            let on: libc::c_int = 1;
            // SAFETY: `fd` is an open socket (see `fds`); the option value is a c_int.
            unsafe {
                libc::setsockopt(
                    *fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

/// Accepts Runtime API connections: `TCP_NODELAY` on (Nagle would hold small responses
/// back by up to 40 ms), and each one registered in [`Connections`].
pub(super) struct RuntimeListener {
    pub(super) listener: TcpListener,
    pub(super) connections: Arc<Connections>,
}

impl axum::serve::Listener for RuntimeListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let admitted = match stream.local_addr() {
                        Ok(local) => self.connections.admits(local.ip(), addr.ip()).await,
                        Err(_) => false,
                    };
                    if !admitted {
                        tracing::warn!(peer = %addr, "Runtime API: connection from outside the environment closed");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let fd = stream.as_raw_fd();
                    self.connections.fds().push(fd);
                    let registration = Registration {
                        connections: self.connections.clone(),
                        fd,
                    };
                    return (
                        Connection {
                            _registration: registration,
                            stream,
                        },
                        addr,
                    );
                }
                // Out of fds and the like: back off briefly, as axum's own listener does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

struct Registration {
    connections: Arc<Connections>,
    fd: RawFd,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.fds().retain(|fd| *fd != self.fd);
    }
}

/// A registered connection. Field order matters: the registration is dropped (and the fd
/// unlisted) before the stream closes the socket.
pub(super) struct Connection {
    _registration: Registration,
    stream: TcpStream,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
