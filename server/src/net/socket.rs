//! The byte stream under a player's WebSocket: plain TCP that can leave tokio's reactor.
//!
//! During the handshake, the hello, the join and the goodbye a connection is an ordinary tokio
//! socket driven by its own task. In between (the whole game) a plain-TCP connection in a live
//! room is [`PlayerSocket::Polled`]: a non-blocking `std` socket outside any reactor, which its
//! room's task reads and writes once per tick (`net::polled`). A packet then wakes nobody: the
//! cost per message is the `recv` or `send` itself, not an epoll return, a task wake-up and a
//! channel hand-off. `Pending` in that state means `EAGAIN` and stores no waker; the room polls
//! again next tick.
//!
//! tokio-tungstenite stays the WebSocket implementation (framing, control frames, the close
//! handshake): it runs over this type in every state.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A player connection's transport.
#[derive(Debug)]
pub enum PlayerSocket {
    /// Plain TCP in tokio's reactor, with what hyper had read past the upgrade request.
    Tcp { stream: TcpStream, prefix: Bytes },
    /// Plain TCP outside any reactor: non-blocking, polled by its room once per tick.
    /// `drained`: a read this round returned less than it asked for, so the kernel had nothing
    /// more; further reads this round return `Pending` without a system call (the one `recv`
    /// that would find the socket empty is skipped). [`PlayerSocket::next_round`] clears it.
    Polled { stream: std::net::TcpStream, drained: bool },
    /// Anything else hyper upgraded (TLS): it stays with its connection task.
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
    /// Between two of the above, or after a failed switch.
    Gone,
}

impl PlayerSocket {
    /// Whether [`PlayerSocket::leave_reactor`] can take this socket out of the reactor: plain
    /// TCP with nothing left of what hyper read ahead.
    pub fn can_leave_reactor(&self) -> bool {
        matches!(self, PlayerSocket::Tcp { prefix, .. } if prefix.is_empty())
    }

    /// Takes a plain TCP socket out of tokio's reactor (it stays non-blocking).
    pub fn leave_reactor(&mut self) -> io::Result<()> {
        match std::mem::replace(self, PlayerSocket::Gone) {
            PlayerSocket::Tcp { stream, prefix } if prefix.is_empty() => {
                *self = PlayerSocket::Polled { stream: stream.into_std()?, drained: false };
                Ok(())
            }
            other => {
                *self = other;
                Err(io::Error::other("only a plain TCP socket with nothing read ahead can leave the reactor"))
            }
        }
    }

    /// A new polling round (a tick): reads go to the kernel again.
    pub fn next_round(&mut self) {
        if let PlayerSocket::Polled { drained, .. } = self {
            *drained = false;
        }
    }

    /// Puts a polled socket back into tokio's reactor (for the goodbye, on a task). Must run
    /// inside the runtime.
    pub fn enter_reactor(&mut self) -> io::Result<()> {
        match std::mem::replace(self, PlayerSocket::Gone) {
            PlayerSocket::Polled { stream, .. } => {
                *self = PlayerSocket::Tcp { stream: TcpStream::from_std(stream)?, prefix: Bytes::new() };
                Ok(())
            }
            other => {
                *self = other;
                Ok(())
            }
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket closed")
}

/// One non-blocking call: `EAGAIN` is `Pending` (no waker is stored: the room polls again).
fn nonblocking<T>(mut call: impl FnMut() -> io::Result<T>) -> Poll<io::Result<T>> {
    loop {
        match call() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            other => return Poll::Ready(other),
        }
    }
}

impl AsyncRead for PlayerSocket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlayerSocket::Tcp { stream, prefix } => {
                if !prefix.is_empty() {
                    let n = prefix.len().min(buf.remaining());
                    buf.put_slice(&prefix[..n]);
                    prefix.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Pin::new(stream).poll_read(cx, buf)
            }
            PlayerSocket::Polled { stream, drained } => {
                if *drained {
                    return Poll::Pending;
                }
                let unfilled = buf.initialize_unfilled();
                let asked = unfilled.len();
                let read = nonblocking(|| (&*stream).read(unfilled));
                if let Poll::Ready(Ok(n)) = read {
                    // A short read emptied the socket; 0 is the end of the stream (read again,
                    // it says so again).
                    *drained = n > 0 && n < asked;
                    buf.advance(n);
                }
                read.map_ok(|_| ())
            }
            PlayerSocket::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            PlayerSocket::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for PlayerSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PlayerSocket::Tcp { stream, .. } => Pin::new(stream).poll_write(cx, data),
            PlayerSocket::Polled { stream, .. } => nonblocking(|| (&*stream).write(data)),
            PlayerSocket::Upgraded(io) => Pin::new(io).poll_write(cx, data),
            PlayerSocket::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlayerSocket::Tcp { stream, .. } => Pin::new(stream).poll_flush(cx),
            // A TCP socket has no user-space buffer to flush.
            PlayerSocket::Polled { .. } => Poll::Ready(Ok(())),
            PlayerSocket::Upgraded(io) => Pin::new(io).poll_flush(cx),
            PlayerSocket::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PlayerSocket::Tcp { stream, .. } => Pin::new(stream).poll_shutdown(cx),
            PlayerSocket::Polled { stream, .. } => Poll::Ready(match stream.shutdown(std::net::Shutdown::Write) {
                Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
                other => other,
            }),
            PlayerSocket::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            PlayerSocket::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_socket_leaves_the_reactor_reads_without_blocking_and_comes_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut socket = PlayerSocket::Tcp { stream: server, prefix: Bytes::from_static(b"ahead") };
        assert!(!socket.can_leave_reactor(), "bytes read ahead must be read through the reactor first");
        let mut five = [0; 5];
        socket.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"ahead");
        assert!(socket.can_leave_reactor());
        socket.leave_reactor().unwrap();
        assert!(matches!(socket, PlayerSocket::Polled { .. }));
        // Nothing sent yet: Pending at once, never a block.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut buf = [0u8; 16];
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut socket).poll_read(&mut cx, &mut read).is_pending());
        client.write_all(b"hi").await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut socket).poll_read(&mut cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    assert_eq!(read.filled(), b"hi");
                    break;
                }
                Poll::Ready(Err(error)) => panic!("read failed: {error}"),
                Poll::Pending => {
                    assert!(std::time::Instant::now() < deadline, "the bytes never arrived");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        }
        // That short read drained the socket: no more reads until the next round.
        client.write_all(b"more").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut socket).poll_read(&mut cx, &mut read).is_pending());
        socket.next_round();
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut socket).poll_read(&mut cx, &mut read).is_ready());
        assert_eq!(read.filled(), b"more");
        assert!(Pin::new(&mut socket).poll_write(&mut cx, b"yo").is_ready());
        socket.enter_reactor().unwrap();
        assert!(matches!(socket, PlayerSocket::Tcp { .. }));
        let mut two = [0; 2];
        client.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"yo");
        socket.write_all(b"ok").await.unwrap();
        client.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ok");
    }
}
