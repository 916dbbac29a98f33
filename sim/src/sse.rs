//! A server-sent events client for the agents' push channel (`GET /agent/stream`), as a browser's
//! EventSource reads it: a single-use ticket (`POST /agent/tickets`), then the stream, resumed
//! after the last event id when it drops. Used by the simulated agents and the `agents` bench.

use std::time::Duration;

use futures::StreamExt;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: String,
    pub data: String,
}

/// Incremental parser of `text/event-stream` (lines may arrive split across chunks).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

/// Longest line accepted; a longer one is dropped (a bounded buffer).
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if b != b'\n' {
                if self.buf.len() < MAX_LINE {
                    self.buf.push(b);
                }
                continue;
            }
            let line = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(SseEvent {
                        id: self.id.take(),
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                self.id = None;
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => self.id = Some(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        out
    }
}

/// Why the stream could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what}: HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("the stream ended")]
    Ended,
}

/// An agent's push channel, reconnecting (new ticket, `last_event_id`) when it drops.
pub struct AgentStream {
    http: reqwest::Client,
    base: String,
    token: String,
    last_id: Option<String>,
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    /// Times the stream was (re)opened.
    pub connects: u64,
}

impl AgentStream {
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> AgentStream {
        AgentStream {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
            last_id: None,
            parser: SseParser::default(),
            pending: Default::default(),
            body: None,
            connects: 0,
        }
    }

    /// The last event id seen (what a reconnect resumes after).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    async fn open(&mut self) -> Result<(), SseError> {
        let r = self.http.post(format!("{}/agent/tickets", self.base)).bearer_auth(&self.token).send().await?;
        if !r.status().is_success() {
            return Err(SseError::Status { what: "POST /agent/tickets", status: r.status().as_u16() });
        }
        let v: serde_json::Value = r.json().await?;
        let ticket = v["ticket"].as_str().unwrap_or_default().to_owned();
        let mut q = vec![("ticket", ticket)];
        if let Some(id) = &self.last_id {
            q.push(("last_event_id", id.clone()));
        }
        let r = self
            .http
            .get(format!("{}/agent/stream", self.base))
            .query(&q)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(SseError::Status { what: "GET /agent/stream", status: r.status().as_u16() });
        }
        self.parser = SseParser::default();
        self.body = Some(r.bytes_stream().boxed());
        self.connects += 1;
        Ok(())
    }

    /// The next event; reconnects (after `retry`) when the stream drops. Errors only when it cannot
    /// be reopened.
    pub async fn next(&mut self, retry: Duration) -> Result<SseEvent, SseError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if e.id.is_some() {
                    self.last_id.clone_from(&e.id);
                }
                return Ok(e);
            }
            let Some(body) = &mut self.body else {
                if self.connects > 0 {
                    tokio::time::sleep(retry).await;
                }
                self.open().await?;
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => self.pending.extend(self.parser.push(&chunk)),
                Some(Err(_)) | None => self.body = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 17-0\nevent: st").is_empty());
        let evs = p.push(b"ate\ndata: {\"a\":\ndata: 1}\r\n\ndata: x\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].id.as_deref(), Some("17-0"));
        assert_eq!(evs[0].event, "state");
        assert_eq!(evs[0].data, "{\"a\":\n1}");
        assert_eq!((evs[1].id.as_deref(), evs[1].event.as_str(), evs[1].data.as_str()), (None, "message", "x"));
    }
}
