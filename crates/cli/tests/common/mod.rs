//! The `loanwire` binary started as an operator starts it, and commands run beside it.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Gateway {
    pub child: Child,
    pub url: String,
    pub app_key: String,
    pub secret: String,
    pub admin_token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> Command {
    without_loanwire_env(Command::new(env!("CARGO_BIN_EXE_loanwire")))
}

/// The binary run by `sh` after `setup` (`ulimit -n 64`, `umask 000`): a limit the test sets
/// for the gateway alone.
pub fn bin_after(setup: &str) -> Command {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        &format!("{setup} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_loanwire"),
    ]);
    without_loanwire_env(c)
}

/// The test's own `LOANWIRE_*` settings are not the gateway's.
fn without_loanwire_env(mut c: Command) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("LOANWIRE_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn start(data_dir: &std::path::Path) -> Gateway {
    start_with(data_dir, &[])
}

pub fn start_with(data_dir: &std::path::Path, envs: &[(&str, &str)]) -> Gateway {
    start_cmd(bin(), data_dir, envs)
}

pub fn start_cmd(cmd: Command, data_dir: &std::path::Path, envs: &[(&str, &str)]) -> Gateway {
    start_on(cmd, "127.0.0.1:0", data_dir, envs)
}

pub fn start_on(
    mut cmd: Command,
    listen: &str,
    data_dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> Gateway {
    let mut child = cmd
        .envs(envs.iter().copied())
        .args(["serve", "--sandbox", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut field = |prefix: &str| loop {
        let line = lines.next().expect("the banner").unwrap();
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            break rest.trim().to_string();
        }
    };
    let url = field("loanwire sandbox gateway listening on ");
    let app_key = field("app key:");
    let secret = field("secret:");
    let admin_token = field("admin token:");
    // Keep reading, so that the gateway's stdout never hits a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    Gateway {
        child,
        url,
        app_key,
        secret,
        admin_token,
    }
}

/// `loanwire call idle-loan-callback` for process `no`, as app `key`: the exit code and what it
/// printed.
pub fn call_as(g: &Gateway, key: &str, secret: &str, no: &str) -> (i32, String) {
    let (code, out, err) = run_as(
        g,
        key,
        secret,
        &[
            "call",
            "idle-loan-callback",
            "--user",
            "3",
            "--user-id",
            "3",
            "--status",
            "IN_PROCESSING",
            "--type",
            "CREDIT",
            "--process-no",
            no,
            "--channel-id",
            "wzzx",
        ],
    );
    (code, format!("{out}{err}"))
}

/// Runs `loanwire ARGS --data-dir DIR`, as an operator on the gateway's machine.
pub fn on_db(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `loanwire call idle-loan-callback` for process `no`, as the sandbox app; it must succeed.
pub fn send_callback(g: &Gateway, no: &str) {
    let (code, err) = call_as(g, &g.app_key, &g.secret, no);
    assert_eq!(code, 0, "{err}");
}

pub fn run(g: &Gateway, args: &[&str]) -> (i32, String, String) {
    run_as(g, &g.app_key, &g.secret, args)
}

pub fn run_as(g: &Gateway, key: &str, secret: &str, args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .env("LOANWIRE_URL", &g.url)
        .env("LOANWIRE_APP_KEY", key)
        .env("LOANWIRE_APP_SECRET", secret)
        .env("LOANWIRE_ADMIN_TOKEN", &g.admin_token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
