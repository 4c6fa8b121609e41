//! System parameters and signatures on any form-encoded input: parsing never panics, the
//! string to sign does not depend on parameter order, and only the right digest verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loanwire_top::encode::form_decode;
use loanwire_top::{sign, Params, SignMethod, SystemParams};

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = form_decode(data) else {
        return;
    };
    let mut params = Params::new();
    for (k, v) in pairs.iter().cloned() {
        if params.merge(k, v).is_err() {
            return;
        }
    }
    let _ = SystemParams::response_format(&params);
    let parsed = SystemParams::parse(&params);
    if let Ok(sys) = &parsed {
        assert!(!sys.method.is_empty() && !sys.app_key.is_empty());
    }
    let signed = sign::string_to_sign(params.iter());
    let mut reversed = Params::new();
    for (k, v) in pairs.into_iter().rev() {
        reversed.merge(k, v).expect("no duplicates: checked above");
    }
    assert_eq!(signed, sign::string_to_sign(reversed.iter()));
    for method in [SignMethod::Md5, SignMethod::Hmac, SignMethod::HmacSha256] {
        let digest = sign::digest(method, b"secret", &signed);
        assert!(sign::sign_matches(&digest, &digest.to_ascii_lowercase()));
        if let Ok(sys) = &parsed {
            let _ = sign::sign_matches(&digest, &sys.sign);
        }
    }
});
