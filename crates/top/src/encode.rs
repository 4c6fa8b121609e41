//! How API parameter values travel (SPEC 1.4): an object parameter is one form field holding a
//! JSON object; a top-level list is comma-joined; the whole is an ordinary
//! `application/x-www-form-urlencoded` body.

use serde::Serialize;

/// Serializes an object parameter the way the official Java SDK does: fields in declaration
/// order (declare them alphabetically to match it byte for byte), `/` escaped as `\/`,
/// non-ASCII written as raw UTF-8, `None` fields left out (use `skip_serializing_if`).
pub fn object_param<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    // `/` can only occur inside JSON strings, so escaping every one of them is safe.
    Ok(json.replace('/', "\\/"))
}

/// A simple list parameter (`fields=a,b,c`).
pub fn list_param<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item.as_ref());
    }
    out
}

/// `application/x-www-form-urlencoded`, UTF-8, `+` for space.
pub fn form_encode<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Decodes a form body or query string. Invalid UTF-8 after percent-decoding is refused rather
/// than replaced, so that a signature is never checked against altered text.
pub fn form_decode(input: &[u8]) -> Result<Vec<(String, String)>, InvalidForm> {
    let mut out = Vec::new();
    for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode_component(k).map_err(|_| InvalidForm::NotUtf8(lossy(k)))?;
        let value = decode_component(v).map_err(|_| InvalidForm::NotUtf8(key.clone()))?;
        out.push((key, value));
    }
    Ok(out)
}

/// Plain runs are copied whole and the result is allocated once: every call's body goes through
/// here, some hundred bytes of percent-encoded JSON in each. A `%` not followed by two hex digits
/// is kept as it is, as `percent_encoding` does.
fn decode_component(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.iter().position(|b| *b == b'%' || *b == b'+') {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at..];
        if rest[0] == b'+' {
            out.push(b' ');
            rest = &rest[1..];
            continue;
        }
        match (
            rest.get(1).and_then(hex_digit),
            rest.get(2).and_then(hex_digit),
        ) {
            (Some(high), Some(low)) => {
                out.push(high << 4 | low);
                rest = &rest[3..];
            }
            _ => {
                out.push(b'%');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest);
    String::from_utf8(out)
}

fn hex_digit(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).map(|d| d as u8)
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidForm {
    #[error("parameter `{0}` is not valid UTF-8")]
    NotUtf8(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Obj<'a> {
        a: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<i64>,
        c: Vec<&'a str>,
    }

    #[test]
    fn object_params_are_written_like_the_java_sdk() {
        let json = object_param(&Obj {
            a: "http://x/y 中文",
            b: None,
            c: vec!["xx"],
        })
        .unwrap();
        assert_eq!(json, r#"{"a":"http:\/\/x\/y 中文","c":["xx"]}"#);
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["a"], "http://x/y 中文");
    }

    #[test]
    fn lists_are_comma_joined() {
        assert_eq!(list_param(["num_iid", "title"]), "num_iid,title");
        assert_eq!(list_param(Vec::<String>::new()), "");
    }

    #[test]
    fn form_encoding_uses_plus_for_space_and_escapes_slash_and_chinese() {
        assert_eq!(form_encode([("a b", "c/d 中")]), "a+b=c%2Fd+%E4%B8%AD");
    }

    #[test]
    fn invalid_utf8_is_refused_not_replaced() {
        assert_eq!(
            form_decode(b"a=%FF%FE"),
            Err(InvalidForm::NotUtf8("a".into()))
        );
        assert!(form_decode(b"a=%EF%BF%BD").is_ok(), "a real U+FFFD is fine");
    }

    #[test]
    fn bare_keys_and_empty_pairs_decode() {
        assert_eq!(
            form_decode(b"a&b=&&c=1%2B1").unwrap(),
            vec![
                ("a".into(), "".into()),
                ("b".into(), "".into()),
                ("c".into(), "1+1".into())
            ]
        );
    }

    proptest! {
        #[test]
        fn form_encoding_round_trips_arbitrary_utf8(
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..8)
        ) {
            let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| !k.is_empty()).collect();
            let encoded = form_encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            prop_assert_eq!(form_decode(encoded.as_bytes()).unwrap(), pairs);
        }

        /// Any bytes at all, malformed escapes included, decode as `percent_encoding` (with `+`
        /// as space) decodes them.
        #[test]
        fn decoding_matches_the_reference_decoder(
            raw in proptest::collection::vec(
                prop_oneof![Just(b'%'), Just(b'+'), Just(b'a'), Just(b'F'), Just(b'0'), Just(b'9'), any::<u8>()],
                0..40,
            )
        ) {
            let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
            let reference = String::from_utf8(percent_encoding::percent_decode(&plus_as_space).collect());
            prop_assert_eq!(decode_component(&raw).ok(), reference.ok());
        }
    }

    #[test]
    fn malformed_escapes_are_kept_as_they_are() {
        assert_eq!(decode_component(b"100%").unwrap(), "100%");
        assert_eq!(decode_component(b"%zz%4").unwrap(), "%zz%4");
        assert_eq!(decode_component(b"%e4%B8%ad+x").unwrap(), "中 x");
    }
}
