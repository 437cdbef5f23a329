//! A Server-Sent Events client: one HTTP/1.1 connection per stream (hyper's low-level
//! handshake over a tokio `TcpStream`), and a parser of the `text/event-stream` framing.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One message of a stream (comment lines, such as heartbeats, are not messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `id:`, when it is a number.
    pub id: Option<u64>,
    /// `event:` (`message` when absent, as the SSE specification says).
    pub event: String,
    /// The `data:` lines, joined by `\n`; empty unless the parser keeps data.
    pub data: String,
}

/// Splits a byte stream into [`Message`]s.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    keep_data: bool,
}

impl Parser {
    /// A parser; `keep_data` false drops `data:` (cheaper when only ids are counted).
    pub fn new(keep_data: bool) -> Parser {
        Parser {
            buf: Vec::new(),
            keep_data,
        }
    }

    /// Adds bytes; pushes every message they complete onto `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Message>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = find_blank_line(&self.buf[start..]) {
            let block = &self.buf[start..start + end];
            if let Some(message) = parse_block(block, self.keep_data) {
                out.push(message);
            }
            start += end + 2;
        }
        self.buf.drain(..start);
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

fn parse_block(block: &[u8], keep_data: bool) -> Option<Message> {
    let text = std::str::from_utf8(block).ok()?;
    let mut message = Message {
        id: None,
        event: String::new(),
        data: String::new(),
    };
    let mut any = false;
    for line in text.split('\n') {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        any = true;
        match field {
            "id" => message.id = value.parse().ok(),
            "event" => message.event = value.to_string(),
            "data" if keep_data => {
                if !message.data.is_empty() {
                    message.data.push('\n');
                }
                message.data.push_str(value);
            }
            _ => {}
        }
    }
    if !any {
        return None;
    }
    if message.event.is_empty() {
        message.event = "message".to_string();
    }
    Some(message)
}

/// An open stream: the answer's body, read frame by frame.
pub struct Stream {
    body: hyper::body::Incoming,
    // Kept so that the connection stays open while the body is read.
    _sender: SendRequest<Empty<Bytes>>,
    // The connection's task: aborted on drop, which closes the socket.
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Stream {
    /// Opens `GET /v1/events/{event_id}/stream`; fails unless the answer is 200.
    pub async fn open(addr: SocketAddr, event_id: &str) -> anyhow::Result<Stream> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::get(format!("/v1/events/{event_id}/stream"))
            .header(HOST, addr.to_string())
            .header(ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        if status != 200 {
            let body = response.into_body().collect().await?.to_bytes();
            bail!(
                "the stream answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(Stream {
            body: response.into_body(),
            _sender: sender,
            conn,
        })
    }

    /// The next bytes of the body; `None` when the server ended the stream.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_across_chunks_and_heartbeats_skipped() {
        let mut parser = Parser::new(true);
        let mut out = Vec::new();
        parser.push(b"id: 7\nevent: snapshot\ndata: {\"a\"", &mut out);
        assert!(out.is_empty());
        parser.push(
            b":1}\n\n:\n\nid: 9\nevent: change\ndata: x\n\nid: 1",
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, Some(7));
        assert_eq!(out[0].event, "snapshot");
        assert_eq!(out[0].data, "{\"a\":1}");
        assert_eq!(out[1].id, Some(9));
        assert_eq!(out[1].event, "change");
        parser.push(b"0\n\n", &mut out);
        assert_eq!(out[2].id, Some(10));
        assert_eq!(out[2].event, "message");
        let mut counting = Parser::new(false);
        let mut out = Vec::new();
        counting.push(b"id: 3\nevent: change\ndata: big\n\n", &mut out);
        assert_eq!(out[0].data, "");
    }
}
