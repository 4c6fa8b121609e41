//! A real HTTP/1.1 server on a loopback port, driven by a script: each connection takes the next
//! action (answer, answer late, or drop the connection unanswered) and records what it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub enum Action {
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    AnswerGzip {
        body: String,
    },
    Late(Duration, String),
    Drop,
}

impl Action {
    pub fn json(body: impl Into<String>) -> Action {
        Action::Answer {
            status: 200,
            content_type: "application/json;charset=UTF-8",
            body: body.into(),
        }
    }
    pub fn xml(body: impl Into<String>) -> Action {
        Action::Answer {
            status: 200,
            content_type: "text/xml;charset=UTF-8",
            body: body.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw query string of the request target.
    pub fn query(&self) -> &str {
        let target = self.request_line.split(' ').nth(1).unwrap_or("");
        target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    pub fn path(&self) -> &str {
        let target = self.request_line.split(' ').nth(1).unwrap_or("");
        target.split('?').next().unwrap_or("")
    }
}

pub struct ScriptedServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl ScriptedServer {
    pub async fn start(script: Vec<Action>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    log.lock().unwrap().push(req);
                    let action = script.lock().unwrap().pop_front().unwrap_or(Action::Drop);
                    let (status, ctype, body, gzip) = match action {
                        Action::Drop => return, // closes the socket without a word
                        Action::Answer {
                            status,
                            content_type,
                            body,
                        } => (status, content_type, body.into_bytes(), false),
                        Action::AnswerGzip { body } => {
                            use std::io::Write;
                            let mut enc = flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::default(),
                            );
                            enc.write_all(body.as_bytes()).unwrap();
                            (
                                200,
                                "application/json;charset=UTF-8",
                                enc.finish().unwrap(),
                                true,
                            )
                        }
                        Action::Late(d, body) => {
                            tokio::time::sleep(d).await;
                            (
                                200,
                                "application/json;charset=UTF-8",
                                body.into_bytes(),
                                false,
                            )
                        }
                    };
                    let mut head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    if gzip {
                        head.push_str("Content-Encoding: gzip\r\n");
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        ScriptedServer { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}/router/rest", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        request_line,
        headers,
        body,
    })
}
