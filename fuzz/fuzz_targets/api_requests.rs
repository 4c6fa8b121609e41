//! The two APIs' requests read from any object parameter: never a panic, every failure a
//! code 40/41 error naming the parameter, and what was read writes back and reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loanwire_api::{IdleLoanCallbackRequest, TopApi, XfdLoanChangeNotifyRequest};
use loanwire_domain::{loan, process, DomainConfig};
use loanwire_top::{Params, TopDateTime};

fn params(pairs: Vec<(String, String)>) -> Params {
    pairs.into_iter().collect()
}

/// Reading what was written gives the same request, once a first write has normalised it.
fn round_trips<A: TopApi + PartialEq + std::fmt::Debug>(req: &A) {
    let once = A::from_params(&params(req.to_params())).expect("a written request reads");
    let twice = A::from_params(&params(once.to_params())).expect("a written request reads");
    assert_eq!(once, twice);
}

fuzz_target!(|text: &str| {
    let cfg = DomainConfig::default();
    let callback = params(vec![
        ("user".into(), "3".into()),
        ("infos".into(), text.into()),
    ]);
    match IdleLoanCallbackRequest::from_params(&callback) {
        Ok(req) => {
            round_trips(&req);
            let _ = process::validate(&cfg, req);
        }
        Err(e) => assert!(matches!(e.code, 40 | 41), "{e:?}"),
    }
    let name = "param_xfd_loan_change_external_request";
    let change = params(vec![(name.into(), text.into())]);
    match XfdLoanChangeNotifyRequest::from_params(&change) {
        Ok(req) => {
            round_trips(&req);
            let now = TopDateTime::now();
            let skew = std::time::Duration::from_secs(600);
            let _ = loan::validate(&cfg, req.param_xfd_loan_change_external_request, now, skew);
        }
        Err(e) => {
            assert!(matches!(e.code, 40 | 41), "{e:?}");
            assert!(e.msg.contains(name), "{e:?}");
        }
    }
});
