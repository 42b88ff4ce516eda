//! The exporter's HTTP: one connection at a time, on the caller's thread,
//! each bounded in time and size. A local user who opens many connections
//! gets them answered in turn, never a thread or a buffer each (a pool that
//! grows a thread per connection would let them pile up in a root process).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A request head larger than this is refused; a scrape's is ~200 bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long one client may take to send its request (a scraper sends it at
/// once) and to read the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What was asked: the request line's method and path (query dropped).
pub struct Request {
    pub method: String,
    pub path: String,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.to_string() }
    }
}

/// Wait up to `wait` for a connection and answer it with `handle`; false
/// if none came. A client that is slow, sends too much or goes away costs
/// only its own answer.
pub fn serve_one(
    listener: &TcpListener,
    wait: Duration,
    handle: impl FnOnce(&Request) -> Response,
) -> Result<bool> {
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::NONE);
    match poll(&mut [PollFd::new(listener.as_fd(), PollFlags::POLLIN)], timeout) {
        Ok(0) | Err(Errno::EINTR) => return Ok(false),
        Ok(_) => {}
        Err(e) => return Err(e).context("waiting for a connection"),
    }
    let stream = match listener.accept() {
        Ok((stream, _)) => stream,
        // Gone before we took it, or the listener is non-blocking and raced.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::ConnectionAborted) => {
            return Ok(false)
        }
        Err(e) => return Err(e).context("accepting a connection"),
    };
    let _ = answer(stream, handle);
    Ok(true)
}

fn answer(mut stream: TcpStream, handle: impl FnOnce(&Request) -> Response) -> Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).context("setting a read timeout")?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT)).context("setting a write timeout")?;
    let response = match read_head(&mut stream)? {
        Some(head) => match parse(&head) {
            Some(request) => handle(&request),
            None => Response::text(400, "bad request\n"),
        },
        None => Response::text(431, "request head too large\n"),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes()).context("writing the answer")?;
    stream.write_all(response.body.as_bytes()).context("writing the answer")?;
    Ok(())
}

/// The bytes up to the blank line that ends the head; None past MAX_HEAD.
fn read_head(stream: &mut TcpStream) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut buf).context("reading a request")?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}

fn parse(head: &[u8]) -> Option<Request> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut words = line.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    words.next()?.starts_with("HTTP/").then_some(())?;
    let path = target.split('?').next().unwrap_or_default();
    Some(Request { method: method.to_string(), path: path.to_string() })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_to_method_and_path() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert!(parse(b"GET /metrics\r\n\r\n").is_none());
        assert!(parse(b"\xff\xfe\r\n\r\n").is_none());
    }
}
