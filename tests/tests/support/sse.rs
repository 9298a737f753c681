//! A Server-Sent Events client over a raw loopback connection: reads the response head, then
//! de-chunks the body incrementally and splits it into events and comments.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One event: its `event:` name and its `data:` as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// An open stream.
pub struct SseClient {
    stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    raw: Vec<u8>,
    text: String,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
    pub ended: bool,
}

impl SseClient {
    /// Connects and sends `GET path` with `headers`; `recv_buffer` shrinks the socket's receive
    /// buffer (to make a client that stops reading fill up quickly).
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        recv_buffer: Option<u32>,
    ) -> SseClient {
        let socket = TcpSocket::new_v4().expect("a socket");
        if let Some(size) = recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .expect("set the receive buffer");
        }
        let mut stream = socket.connect(addr).await.expect("connect");
        let mut head =
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("write the request");
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 4096];
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut buf).await.expect("read the head");
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let rest = raw[end + 4..].to_vec();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        SseClient {
            stream,
            status,
            headers,
            raw: rest,
            text: String::new(),
            comments: 0,
            ended: false,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Moves complete chunks from `raw` to `text`.
    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
                return;
            };
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.text
                .push_str(&String::from_utf8_lossy(&self.raw[start..start + size]));
            self.raw.drain(..start + size + 2);
        }
    }

    /// Takes one complete event from `text`, counting comments on the way.
    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.text.find("\n\n")?;
            let block: String = self.text.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = String::new();
            let mut any = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                    any = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    any = true;
                }
            }
            if any {
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(SseEvent { event, data });
            }
        }
    }

    /// The next event, or `None` when the stream ended or nothing came within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let mut buf = vec![0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.ended = true;
                    return None;
                }
                Ok(Ok(n)) => self.raw.extend_from_slice(&buf[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Reads until a keep-alive comment arrives; whether one did within `timeout`.
    pub async fn wait_comment(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = self.comments;
        while self.comments == before {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.dechunk();
            let _ = self.take_event();
            if self.comments > before {
                return true;
            }
            let mut buf = vec![0u8; 4096];
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.raw.extend_from_slice(&buf[..n]),
                _ => return self.comments > before,
            }
        }
        true
    }
}
