//! The request head as written, answer heads as parsed (framing, keep
//! alive, refusals), and chunked bodies undone whole or byte by byte.

use super::*;

fn parsed(raw: &[u8]) -> Result<Option<(Head, HeaderMap)>, WireError> {
    let mut headers = HeaderMap::new();
    Ok(parse_head(raw, &mut headers, false)?.map(|h| (h, headers)))
}

fn head(raw: &str) -> Head {
    parsed(raw.as_bytes()).unwrap().unwrap().0
}

#[test]
fn a_request_head_names_the_host_and_the_length_once() {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer k"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut out = b"left over".to_vec();
    write_head(
        &mut out,
        &Method::POST,
        "/v1/chat/completions?a=1",
        "up:8080",
        &headers,
        42,
    );
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "POST /v1/chat/completions?a=1 HTTP/1.1\r\nhost: up:8080\r\n\
         authorization: Bearer k\r\ncontent-type: application/json\r\n\
         content-length: 42\r\n\r\n"
    );
    // The caller's own host and length are the ones sent.
    headers.insert(HOST, HeaderValue::from_static("named"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
    write_head(&mut out, &Method::POST, "/", "up:8080", &headers, 42);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.matches("host:").count(), 1, "{text}");
    assert!(text.contains("host: named\r\n"));
    assert_eq!(text.matches("content-length:").count(), 1, "{text}");
    // A GET without a body says no length; a POST without one says 0.
    write_head(&mut out, &Method::GET, "/m", "up", &HeaderMap::new(), 0);
    assert_eq!(out, b"GET /m HTTP/1.1\r\nhost: up\r\n\r\n");
    write_head(&mut out, &Method::POST, "/m", "up", &HeaderMap::new(), 0);
    assert_eq!(
        out,
        b"POST /m HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn an_answer_head_is_parsed_only_when_complete() {
    let raw = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-A: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\nhello";
    for cut in 0..raw.len() - 5 {
        assert!(parsed(&raw[..cut]).unwrap().is_none(), "cut at {cut}");
    }
    let (h, headers) = parsed(raw).unwrap().unwrap();
    assert_eq!(h.len, raw.len() - 5);
    assert_eq!(h.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.framing, Framing::Length(5));
    assert!(h.keep_alive);
    assert_eq!(headers["retry-after"], "3");
    let both: Vec<_> = headers.get_all("x-a").iter().collect();
    assert_eq!(both, ["1", "2"]);
}

#[test]
fn framing_and_keep_alive_follow_rfc_9112() {
    let cases: &[(&str, Framing, bool)] = &[
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Framing::Empty,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n",
            Framing::Length(7),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
            Framing::Chunked,
            true,
        ),
        // A length beside a coding: the coding frames, the connection ends.
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Chunked,
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            Framing::Close,
            false,
        ),
        ("HTTP/1.1 200 OK\r\nx: y\r\n\r\n", Framing::Close, false),
        (
            "HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
            Framing::Empty,
            true,
        ),
        ("HTTP/1.1 304 Not Modified\r\n\r\n", Framing::Empty, true),
        (
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
            Framing::Length(2),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: foo, Close\r\ncontent-length: 2\r\n\r\n",
            Framing::Length(2),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n",
            Framing::Length(2),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n",
            Framing::Length(2),
            true,
        ),
        ("HTTP/1.1 100 Continue\r\n\r\n", Framing::Empty, true),
    ];
    for (raw, framing, keep_alive) in cases {
        let h = head(raw);
        assert_eq!((h.framing, h.keep_alive), (*framing, *keep_alive), "{raw}");
    }
    let mut headers = HeaderMap::new();
    let h = parse_head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        &mut headers,
        true,
    );
    assert_eq!(
        h.unwrap().unwrap().framing,
        Framing::Empty,
        "an answer to HEAD"
    );
}

#[test]
fn malformed_heads_are_refused_with_their_reason() {
    let refused = [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n",
            "content-length",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n",
            "content-length",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "content-length",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "content-length",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "content-length",
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "switched protocols",
        ),
        ("<html>\r\n\r\n", "head is invalid"),
        ("HTTP/1.1 2000 OK\r\n\r\n", "head is invalid"),
        ("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "head is invalid"),
    ];
    for (raw, says) in refused {
        let e = parsed(raw.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("{raw} was taken"));
        assert!(e.to_string().contains(says), "{raw}: {e}");
    }
    let many = format!(
        "HTTP/1.1 200 OK\r\n{}\r\n",
        "x: y\r\n".repeat(MAX_HEADERS + 1)
    );
    assert!(
        parsed(many.as_bytes()).is_err(),
        "more header lines than allowed"
    );
}

fn undo(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), WireError> {
    let (mut chunks, mut buf, mut out) = (Chunks::Size, BytesMut::new(), Vec::new());
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match chunks.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::More => break,
                Step::End => return Ok((out, buf.is_empty())),
            }
        }
    }
    Ok((out, false))
}

#[test]
fn a_chunked_body_is_undone_however_it_arrives() {
    let wire: &[u8] =
        b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: t\r\n\r\n";
    let want = b"helloabcdefghijklmnopqrstuvwxyz".to_vec();
    assert_eq!(undo(&[wire]).unwrap(), (want.clone(), true));
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(undo(&bytes).unwrap(), (want.clone(), true), "byte by byte");
    let (head, tail) = wire.split_at(12);
    assert_eq!(undo(&[head, tail]).unwrap(), (want, true));
    // Data is given as it comes: part of a chunk, before its end.
    let (mut chunks, mut buf) = (Chunks::Size, BytesMut::from(&b"a\r\nhel"[..]));
    assert_eq!(
        chunks.step(&mut buf).unwrap(),
        Step::Data(Bytes::from_static(b"hel"))
    );
    assert_eq!(chunks, Chunks::Data(7));
    // Not finished: no end.
    assert_eq!(
        undo(&[b"5\r\nhello\r\n"]).unwrap(),
        (b"hello".to_vec(), false)
    );
}

#[test]
fn a_malformed_chunk_is_refused() {
    for wire in [
        &b"x\r\n"[..],
        b"\r\n",
        b"5 x\r\nhello\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"1000000000000000\r\n",
    ] {
        assert!(matches!(undo(&[wire]), Err(WireError::Chunk)), "{wire:?}");
    }
    let long = vec![b'1'; MAX_LINE + 1];
    assert!(
        matches!(undo(&[&long]), Err(WireError::Chunk)),
        "an endless size line"
    );
}

#[test]
fn small_data_is_copied_and_the_buffer_kept_whole() {
    let mut buf = BytesMut::with_capacity(8192);
    buf.extend_from_slice(&[7u8; 100]);
    let at = buf.as_ptr();
    let data = take(&mut buf, 100);
    assert_eq!(data.len(), 100);
    assert_ne!(data.as_ptr(), at, "copied");
    // More than is left after the taken bytes: the freed front is reused.
    buf.reserve(8192);
    assert_eq!(
        buf.as_ptr(),
        at,
        "the buffer's one allocation read into again"
    );
    buf.extend_from_slice(&vec![1u8; COPY_AT_MOST + 1]);
    let at = buf.as_ptr();
    let big = take(&mut buf, COPY_AT_MOST + 1);
    assert_eq!(big.as_ptr(), at, "large data split off, not copied");
}

/// Whether a header line's name is matched as written or parsed, the map
/// holds what `http` parses it to, its value as sent; the connection's own
/// headers, `Date` and `Server` are left out however they are spelled.
#[test]
fn every_header_name_is_the_one_http_parses() {
    let names = [
        "Content-Type",
        "content-type",
        "CONTENT-TYPE",
        "Content-Length",
        "content-Length",
        "Date",
        "date",
        "DaTe",
        "Server",
        "server",
        "Connection",
        "connection",
        "Transfer-Encoding",
        "transfer-encoding",
        "Keep-Alive",
        "X-Request-Id",
        "openai-processing-ms",
        "Retry-After",
    ];
    for name in names {
        let value = match name.to_ascii_lowercase().as_str() {
            "content-length" => "2",
            "connection" => "keep-alive",
            "keep-alive" => "timeout=5",
            "transfer-encoding" => "identity",
            _ => "v a\tl",
        };
        let raw = format!("HTTP/1.1 200 OK\r\n{name}: {value}\r\ncontent-length: 2\r\n\r\n");
        let (_, headers) = parsed(raw.as_bytes()).unwrap().unwrap();
        let expected = HeaderName::from_bytes(name.as_bytes()).unwrap();
        let left_out = matches!(
            expected.as_str(),
            "date" | "server" | "connection" | "transfer-encoding" | "keep-alive"
        );
        assert_eq!(
            headers.get(&expected).map(|v| v.as_bytes()),
            (!left_out).then_some(value.as_bytes()),
            "{raw}"
        );
        assert_eq!(header_name(name.as_bytes()).unwrap(), expected, "{name}");
    }
    assert!(header_name(b"bad name").is_err());
}
