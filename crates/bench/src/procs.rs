//! The servers under test run as child processes of the bench (the `loanwire` binary itself),
//! so that their memory can be measured apart from the load generator's.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `exe args…`, which prints a line containing `http://ADDR` once it listens.
    pub fn start(
        exe: &Path,
        args: &[String],
        envs: &[(String, String)],
    ) -> std::io::Result<Server> {
        let mut child = Command::new(exe)
            .args(args)
            .envs(envs.iter().cloned())
            .env(
                "LOANWIRE_LOG",
                std::env::var("LOANWIRE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let base_url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(i) = line.find("http://") {
                        let url = line[i..].split_whitespace().next().unwrap_or("");
                        break url.trim_end_matches("/router/rest").to_string();
                    }
                }
                _ => {
                    let status = child.wait()?;
                    return Err(std::io::Error::other(format!(
                        "{} exited before listening: {status}",
                        exe.display()
                    )));
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, base_url })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}
