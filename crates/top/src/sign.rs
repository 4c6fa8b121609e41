//! TOP request signing (SPEC 1.3).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The three digests a TOP request may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignMethod {
    /// `MD5(secret + S + secret)`
    Md5,
    /// `HMAC-MD5(key = secret, S)`
    Hmac,
    /// `HMAC-SHA256(key = secret, S)`
    #[default]
    HmacSha256,
}

impl SignMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::Md5 => "md5",
            SignMethod::Hmac => "hmac",
            SignMethod::HmacSha256 => "hmac-sha256",
        }
    }
}

impl fmt::Display for SignMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported sign_method `{0}`: use md5, hmac or hmac-sha256")]
pub struct UnknownSignMethod(pub String);

impl FromStr for SignMethod {
    type Err = UnknownSignMethod;

    /// Case-insensitive: some SDKs send `HMAC-SHA256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "md5" => Ok(SignMethod::Md5),
            "hmac" => Ok(SignMethod::Hmac),
            "hmac-sha256" => Ok(SignMethod::HmacSha256),
            _ => Err(UnknownSignMethod(s.to_string())),
        }
    }
}

/// A computed signature with the string it was computed over, so that a partner fighting
/// "Invalid signature" can compare their string with ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub method: SignMethod,
    /// `key1value1key2value2…` over the sorted parameters; the secret is not part of it, even
    /// for `md5`, where the digest wraps it as `secret + S + secret`.
    pub string_to_sign: String,
    /// Upper-case hex.
    pub sign: String,
}

impl Signature {
    /// The signed string as a human may see it: for `md5` the secret is shown as `<secret>`.
    pub fn explain(&self) -> String {
        match self.method {
            SignMethod::Md5 => format!("<secret>{}<secret>", self.string_to_sign),
            SignMethod::Hmac | SignMethod::HmacSha256 => self.string_to_sign.clone(),
        }
    }
}

/// Builds the string that is signed: every parameter except `sign`, sorted by key in byte
/// order, concatenated as `key` + `value` with no separators. Empty values contribute their key.
pub fn string_to_sign<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != "sign").collect();
    // A stable sort keeps duplicate keys in arrival order, which is how they were concatenated
    // by whoever signed them.
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len()).sum());
    for (k, v) in pairs {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// The digest of an already built string, as upper-case hex.
pub fn digest(method: SignMethod, secret: &[u8], string_to_sign: &str) -> String {
    let bytes = match method {
        SignMethod::Md5 => {
            let mut h = Md5::new();
            h.update(secret);
            h.update(string_to_sign.as_bytes());
            h.update(secret);
            h.finalize().to_vec()
        }
        SignMethod::Hmac => {
            let mut m = Hmac::<Md5>::new_from_slice(secret).expect("HMAC takes keys of any length");
            m.update(string_to_sign.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        SignMethod::HmacSha256 => {
            let mut m =
                Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
            m.update(string_to_sign.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    hex::encode_upper(bytes)
}

/// Signs a set of parameters (the `sign` parameter itself, if present, is left out).
pub fn sign<'a, I>(params: I, secret: &[u8], method: SignMethod) -> Signature
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let string_to_sign = string_to_sign(params);
    let sign = digest(method, secret, &string_to_sign);
    Signature {
        method,
        string_to_sign,
        sign,
    }
}

/// Compares a received sign with the expected one: case-insensitively (SPEC 1.3) and in time
/// that does not depend on where the first difference is.
pub fn sign_matches(expected: &str, received: &str) -> bool {
    let (a, b) = (expected.as_bytes(), received.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_uppercase() ^ y.to_ascii_uppercase())
    }) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PUBLISHED: [(&str, &str); 9] = [
        ("method", "taobao.item.seller.get"),
        ("app_key", "12345678"),
        ("session", "test"),
        ("timestamp", "2016-01-01 12:00:00"),
        ("format", "json"),
        ("v", "2.0"),
        ("sign_method", "md5"),
        ("fields", "num_iid,title,nick,price,num"),
        ("num_iid", "11223344"),
    ];

    #[test]
    fn published_md5_vector_matches_string_and_sign() {
        let sig = sign(PUBLISHED, b"helloworld", SignMethod::Md5);
        assert_eq!(
            format!("helloworld{}helloworld", sig.string_to_sign),
            "helloworldapp_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.getnum_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0helloworld"
        );
        assert_eq!(sig.sign, "66987CB115214E59E6EC978214934FB8");
    }

    #[test]
    fn the_sign_parameter_is_not_signed() {
        let mut with_sign = PUBLISHED.to_vec();
        with_sign.push(("sign", "WHATEVER"));
        assert_eq!(
            sign(with_sign, b"helloworld", SignMethod::Md5).sign,
            "66987CB115214E59E6EC978214934FB8"
        );
    }

    #[test]
    fn hmac_md5_matches_rfc_2202_case_1() {
        let sig = sign([("Hi", " There")], &[0x0b; 16], SignMethod::Hmac);
        assert_eq!(sig.string_to_sign, "Hi There");
        assert_eq!(sig.sign, "9294727A3638BB1C13F48EF8158BFC9D");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_1() {
        let sig = sign([("Hi", " There")], &[0x0b; 20], SignMethod::HmacSha256);
        assert_eq!(
            sig.sign,
            "B0344C61D8DB38535CA8AFCEAF0BF12B881DC200C9833DA726E9376C2E32CFF7"
        );
    }

    #[test]
    fn keys_sort_in_byte_order_so_capitals_come_first() {
        assert_eq!(
            string_to_sign([("app_key", "1"), ("Hi", "2"), ("_x", "3")]),
            "Hi2_x3app_key1"
        );
    }

    #[test]
    fn empty_values_are_signed_as_their_bare_key() {
        assert_eq!(string_to_sign([("b", ""), ("a", "1")]), "a1b");
    }

    #[test]
    fn sign_method_parses_case_insensitively() {
        assert_eq!(
            "HMAC-SHA256".parse::<SignMethod>(),
            Ok(SignMethod::HmacSha256)
        );
        assert_eq!("md5".parse::<SignMethod>(), Ok(SignMethod::Md5));
        assert!("sha1".parse::<SignMethod>().is_err());
    }

    #[test]
    fn received_signs_compare_case_insensitively() {
        assert!(sign_matches("66987CB1", "66987cb1"));
        assert!(!sign_matches("66987CB1", "66987cb2"));
        assert!(!sign_matches("66987CB1", "66987CB"));
    }

    proptest! {
        #[test]
        fn sign_does_not_depend_on_parameter_order(
            params in proptest::collection::btree_map("[a-zA-Z_]{1,12}", "\\PC{0,20}", 0..12),
            seed in any::<u64>(),
            method in prop_oneof![Just(SignMethod::Md5), Just(SignMethod::Hmac), Just(SignMethod::HmacSha256)],
        ) {
            let ordered: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut shuffled = ordered.clone();
            // A deterministic shuffle driven by the generated seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(
                sign(ordered, b"secret", method).sign,
                sign(shuffled, b"secret", method).sign
            );
        }
    }
}
