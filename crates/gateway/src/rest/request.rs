//! Reading a call's parameters from wherever they came: the query string, an urlencoded body,
//! a multipart body (SPEC 1.1). Every failure is a TOP error, never a dropped connection.

use axum::body::Body;
use axum::http::{header, HeaderMap, Uri};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use loanwire_top::encode::form_decode;
use loanwire_top::text::echo;
use loanwire_top::{Params, TopError};

/// A body over the limit is still read (and thrown away) up to this many times the limit, so
/// that the caller, still writing, gets its answer instead of a reset connection.
const DRAIN_FACTOR: usize = 64;

pub struct Received {
    pub params: Params,
    /// Names of file parameters (multipart parts with a file name): not signed, not stored.
    pub files: Vec<String>,
}

fn request_error(sub_code: &str, reason: String) -> TopError {
    TopError::invalid_argument("request", reason.clone()).with_sub(sub_code, reason)
}

/// Limits on what one request may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: usize,
    pub max_params: usize,
    /// The whole body must arrive within this (a client trickling bytes holds a connection).
    pub body_timeout: std::time::Duration,
}

/// A request that could not be read, with the parameters read before the failure: the answer
/// still honours the `format` the caller asked for, wherever it put it.
pub struct Unread {
    pub error: TopError,
    pub params: Params,
}

pub async fn read(
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
) -> Result<Received, Unread> {
    let mut params = Params::new();
    let mut files = Vec::new();
    match read_into(uri, headers, body, limits, &mut params, &mut files).await {
        Ok(()) => Ok(Received { params, files }),
        Err(error) => Err(Unread { error, params }),
    }
}

fn too_large(limit: usize) -> TopError {
    request_error(
        "isv.request-too-large",
        format!("the request body is over the {limit}-byte limit"),
    )
}

async fn read_into(
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
    params: &mut Params,
    files: &mut Vec<String>,
) -> Result<(), TopError> {
    let Limits {
        max_body,
        max_params,
        body_timeout,
    } = limits;
    let mut count = 0usize;
    let mut add = |params: &mut Params, k: String, v: String| -> Result<(), TopError> {
        count += 1;
        if count > max_params {
            return Err(request_error(
                "isv.too-many-parameters",
                format!("more than {max_params} parameters"),
            ));
        }
        params
            .merge(k, v)
            .map_err(|e| request_error("isv.duplicate-parameter", e.to_string()))
    };

    if let Some(q) = uri.query() {
        for (k, v) in form_decode(q.as_bytes())
            .map_err(|e| request_error("isv.invalid-encoding", e.to_string()))?
        {
            add(params, k, v)?;
        }
    }

    // Announced too large: refused before a byte of it is read (and so without a `100
    // Continue` inviting the client to send it).
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max_body as u64) {
        return Err(too_large(max_body));
    }
    let bytes = read_limited(body, max_body, body_timeout).await?;
    if !bytes.is_empty() {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "multipart/form-data" => {
                let boundary = multer::parse_boundary(&content_type)
                    .map_err(|e| request_error("isv.invalid-multipart", format!("multipart body: {e}")))?;
                let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
                let mut multipart = multer::Multipart::new(stream, boundary);
                loop {
                    let field = match multipart.next_field().await {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => return Err(request_error("isv.invalid-multipart", format!("multipart body: {e}"))),
                    };
                    let name = field.name().unwrap_or("").to_string();
                    let is_file = field.file_name().is_some();
                    let data = field
                        .bytes()
                        .await
                        .map_err(|e| request_error("isv.invalid-multipart", format!("multipart body: {e}")))?;
                    if is_file {
                        files.push(name);
                        continue;
                    }
                    let value = String::from_utf8(data.to_vec()).map_err(|_| {
                        request_error("isv.invalid-encoding", format!("parameter `{}` is not valid UTF-8", echo(&name)))
                    })?;
                    add(params, name, value)?;
                }
            }
            // Form bodies; some clients send them without a content type or as text/plain.
            "application/x-www-form-urlencoded" | "" | "text/plain" => {
                for (k, v) in form_decode(&bytes).map_err(|e| request_error("isv.invalid-encoding", e.to_string()))? {
                    add(params, k, v)?;
                }
            }
            other => {
                return Err(request_error(
                    "isv.unsupported-content-type",
                    format!("content type `{}` is not supported: send application/x-www-form-urlencoded or multipart/form-data", echo(other)),
                ))
            }
        }
    }
    Ok(())
}

async fn read_limited(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, TopError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(request_error(
                    "isv.request-timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        timeout.as_secs()
                    ),
                ))
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            request_error(
                "isv.invalid-request",
                format!("reading the body failed: {e}"),
            )
        })?;
        total += chunk.len();
        if total > limit {
            buf.clear();
            if total > limit.saturating_mul(DRAIN_FACTOR) {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if total > limit {
        return Err(too_large(limit));
    }
    Ok(buf.freeze())
}
