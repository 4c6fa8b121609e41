//! `loanwire sign`, run as a partner would run it.

use std::process::Command;

fn loanwire(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loanwire"))
        .args(args)
        .env_remove("LOANWIRE_APP_SECRET")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const PUBLISHED: [&str; 9] = [
    "method=taobao.item.seller.get",
    "app_key=12345678",
    "session=test",
    "timestamp=2016-01-01 12:00:00",
    "format=json",
    "v=2.0",
    "sign_method=md5",
    "fields=num_iid,title,nick,price,num",
    "num_iid=11223344",
];

#[test]
fn sign_prints_the_published_vector_alone() {
    let mut args = vec!["sign", "--secret", "helloworld", "--sign-method", "md5"];
    args.extend(PUBLISHED);
    let (code, stdout, _) = loanwire(&args);
    assert_eq!(code, 0);
    assert_eq!(stdout, "66987CB115214E59E6EC978214934FB8\n");
}

#[test]
fn explain_shows_the_signed_string_with_the_secret_masked() {
    let mut args = vec![
        "sign",
        "--secret",
        "helloworld",
        "--sign-method",
        "md5",
        "--explain",
    ];
    args.extend(PUBLISHED);
    let (code, stdout, _) = loanwire(&args);
    assert_eq!(code, 0);
    assert!(stdout.contains("<secret>app_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.getnum_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0<secret>"), "{stdout}");
    assert!(
        !stdout.contains("helloworld"),
        "the secret leaked: {stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("66987CB115214E59E6EC978214934FB8")
    );
}

#[test]
fn sign_adds_no_parameter_of_its_own() {
    // RFC 2202 case 1 through TOP's concatenation: `Hi` + ` There`.
    let secret = String::from_utf8(vec![0x0b; 16]).unwrap();
    let (code, stdout, _) = loanwire(&[
        "sign",
        "--secret",
        &secret,
        "--sign-method",
        "hmac",
        "Hi= There",
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "9294727A3638BB1C13F48EF8158BFC9D");
}

#[test]
fn a_parameter_without_equals_is_a_usage_error() {
    let (code, _, stderr) = loanwire(&["sign", "--secret", "s", "novalue"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("key=value"), "{stderr}");
}
