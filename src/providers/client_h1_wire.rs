//! The bytes of HTTP/1.1 as the gateway's upstream client speaks them: a
//! request's head written, an answer's head parsed (RFC 9112), and a
//! chunked body's framing undone.
//!
//! Place in the pipeline: under [`super::client_h1_conn`], which owns the
//! socket and its read buffer and calls these on the bytes it has. The
//! head is written into one reused buffer and sent with the body's pieces
//! in one vectored write; the answer's header values are slices of one
//! copy of its head, parsed by `httparse`. The answer's header map holds
//! what the gateway may read: the connection's own headers (`Connection`,
//! `Keep-Alive`, `Transfer-Encoding`) are used here and left out, as are
//! `Date` and `Server`, which nothing reads (each stored header costs some
//! two hundred instructions). Must not read or write a socket, or keep
//! state beyond one body's framing.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, SERVER, TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

/// `Keep-Alive` (a connection's own header; `http` has no constant).
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The most header lines an answer may have (hyper's client default).
const MAX_HEADERS: usize = 100;

/// The longest chunk-size line or trailer line read.
const MAX_LINE: usize = 4096;

/// Data up to this size is copied out of the read buffer (which stays
/// whole, to be read into again); larger data is split off it.
pub(super) const COPY_AT_MOST: usize = 4096;

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream closed the connection before its answer was complete")]
    Closed,
    #[error("the upstream's answer head is invalid: {0}")]
    Head(httparse::Error),
    #[error("the upstream's answer head is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("the upstream's answer has an invalid header")]
    Header,
    #[error("the upstream's answer has an invalid content-length")]
    ContentLength,
    #[error("the upstream's answer has an invalid chunk")]
    Chunk,
    #[error("the upstream switched protocols, which the gateway never asks for")]
    Upgrade,
}

/// Writes a request's head into `out` (cleared first): the request line
/// in origin form, `host` unless `headers` has one, `headers`, and a
/// `content-length` for a body (or a method that carries one).
pub(super) fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    authority: &str,
    headers: &HeaderMap,
    body_len: u64,
) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        line(out, b"host", authority.as_bytes());
    }
    for (name, value) in headers {
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let carries = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if (body_len > 0 || carries) && !headers.contains_key(CONTENT_LENGTH) {
        line(
            out,
            b"content-length",
            itoa::Buffer::new().format(body_len).as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (`204`, `304`, an answer to `HEAD`, `content-length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the upstream closes the connection.
    Close,
}

/// An answer's head, parsed.
#[derive(Debug)]
pub(super) struct Head {
    /// Its length in bytes, the blank line included.
    pub(super) len: usize,
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) framing: Framing,
    /// Whether the connection may carry another request after this answer.
    pub(super) keep_alive: bool,
}

/// Parses the answer head at the start of `buf` into `headers` (cleared
/// first, and given the head's headers but the connection's own, `Date`
/// and `Server`); `None` while it is incomplete. An interim (`1xx`) head comes
/// back like any other: the caller skips it.
pub(super) fn parse_head(
    buf: &[u8],
    headers: &mut HeaderMap,
    to_head: bool,
) -> Result<Option<Head>, WireError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut answer,
        buf,
        &mut slots,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Head(e)),
    };
    let code = answer.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(WireError::Upgrade);
    }
    let version = match answer.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    headers.clear();
    // One copy of the head; every value is a slice of it.
    let raw = Bytes::copy_from_slice(&buf[..len]);
    let (mut length, mut chunked, mut coded) = (None::<u64>, false, false);
    let (mut close, mut keep) = (false, false);
    for h in answer.headers.iter() {
        let name = header_name(h.name.as_bytes())?;
        if name == CONTENT_LENGTH {
            let n = content_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::ContentLength);
            }
            length = Some(n);
        } else if name == TRANSFER_ENCODING {
            coded = true;
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
            continue;
        } else if name == CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
            continue;
        } else if name == DATE || name == SERVER || name == KEEP_ALIVE {
            continue;
        }
        let at = h.value.as_ptr() as usize - buf.as_ptr() as usize;
        let value = HeaderValue::from_maybe_shared(raw.slice(at..at + h.value.len()))
            .map_err(|_| WireError::Header)?;
        headers.append(name, value);
    }
    let mut keep_alive = !close && (version == Version::HTTP_11 || keep);
    let framing = if to_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if coded {
        // A length beside a coding is ignored, and the connection not
        // trusted again (RFC 9112, 6.3).
        keep_alive &= length.is_none() && chunked;
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    if framing == Framing::Close {
        keep_alive = false;
    }
    Ok(Some(Head {
        len,
        status,
        version,
        framing,
        keep_alive,
    }))
}

/// A header line's name. The names nearly every answer has, as servers
/// write them, are matched as they are; anything else is parsed (checked
/// and lower-cased, byte by byte, by `http`: about a hundred instructions
/// a name).
fn header_name(raw: &[u8]) -> Result<HeaderName, WireError> {
    Ok(match raw {
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Date" | b"date" => DATE,
        b"Server" | b"server" => SERVER,
        b"Connection" | b"connection" => CONNECTION,
        b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
        _ => HeaderName::from_bytes(raw).map_err(|_| WireError::Header)?,
    })
}

/// A `content-length` value: digits, or a list of the same digits.
fn content_length(value: &[u8]) -> Result<u64, WireError> {
    let mut found = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(WireError::ContentLength);
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(WireError::ContentLength);
        }
        found = Some(n);
    }
    found.ok_or(WireError::ContentLength)
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// The first `n` bytes of `buf`, taken off it: copied when small, so
/// the buffer stays one allocation that later reads reuse.
pub(super) fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_AT_MOST {
        let data = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        data
    } else {
        buf.split_to(n).freeze()
    }
}

/// Where a chunked body's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunks {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, this much of it left.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// After the last chunk, at the trailers (skipped) and the blank line.
    Trailers,
    Done,
}

/// What one step of a chunked body gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    /// The buffer holds no more of it: read more.
    More,
    End,
}

impl Chunks {
    /// Undoes the framing at the start of `buf` until data, the end, or
    /// the need of more bytes. Data is given as soon as it arrives, a
    /// chunk in as many pieces as it was read in (a stream's events are
    /// not held back).
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, WireError> {
        loop {
            match *self {
                Chunks::Size => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    *self = if size == 0 {
                        Chunks::Trailers
                    } else {
                        Chunks::Data(size)
                    };
                }
                Chunks::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = take(buf, n);
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Chunks::DataEnd
                    } else {
                        Chunks::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                Chunks::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk);
                    }
                    buf.advance(2);
                    *self = Chunks::Size;
                }
                Chunks::Trailers => {
                    let Some(end) = line_end(buf)? else {
                        return Ok(Step::More);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        *self = Chunks::Done;
                    }
                }
                Chunks::Done => return Ok(Step::End),
            }
        }
    }
}

/// Where the line at the start of `buf` ends (its CRLF's index); `None`
/// while incomplete.
fn line_end(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(at) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Err(WireError::Chunk)
        } else {
            Ok(None)
        };
    };
    if at == 0 || buf[at - 1] != b'\r' || at > MAX_LINE {
        return Err(WireError::Chunk);
    }
    Ok(Some(at - 1))
}

/// A chunk-size line's size (hex digits, then extensions, ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(WireError::Chunk);
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(WireError::Chunk);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| WireError::Chunk)?;
    u64::from_str_radix(hex, 16).map_err(|_| WireError::Chunk)
}

#[cfg(test)]
#[path = "client_h1_wire_tests.rs"]
mod tests;
