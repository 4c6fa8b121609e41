//! Where the gateway's time goes while the bench loads it: the store's stages (from the
//! gateway's `loanwire_store_stage_seconds` histograms) and, on Linux, each of its threads' CPU
//! and the time it stood runnable without a CPU (`/proc/<pid>/task/*/schedstat`). Taken around
//! every timed slice against the gateway and added up per level.

use std::collections::BTreeMap;
use std::time::Instant;

use loanwire_store::Stage;
use serde::Serialize;

use crate::run::BenchError;

/// The store's stage histograms: stage → (sum of seconds, count).
type Stages = BTreeMap<String, (f64, f64)>;
/// Per thread name: (run ns, runnable-but-waiting ns), summed over threads of that name.
type Threads = BTreeMap<String, (u64, u64)>;

/// What is read before a slice.
pub struct Mark {
    at: Instant,
    stages: Stages,
    threads: Threads,
}

/// The sums over a level's slices.
#[derive(Default)]
pub struct Tally {
    seconds: f64,
    stages: Stages,
    threads: Threads,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageMean {
    pub stage: String,
    /// `call` or `batch`.
    pub per: &'static str,
    pub mean_ms: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadTime {
    pub thread: String,
    /// Cores' worth of CPU the threads of this name used.
    pub cpu_cores: f64,
    /// Cores' worth of time they stood runnable, waiting for a CPU.
    pub runnable_waiting: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waits {
    pub stages: Vec<StageMean>,
    pub threads: Vec<ThreadTime>,
}

/// Reads the gateway's stage histograms and its threads' times.
pub async fn mark(base_url: &str, pid: u32) -> Result<Mark, BenchError> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| BenchError::Setup(format!("read the gateway's metrics: {e}")))?
        .text()
        .await
        .map_err(|e| BenchError::Setup(format!("read the gateway's metrics: {e}")))?;
    Ok(Mark {
        at: Instant::now(),
        stages: parse_stages(&text),
        threads: threads(pid),
    })
}

impl Tally {
    /// Adds what changed since `before`.
    pub fn add(&mut self, before: &Mark, after: &Mark) {
        self.seconds += after.at.duration_since(before.at).as_secs_f64();
        for (stage, (sum, count)) in &after.stages {
            let (s0, c0) = before.stages.get(stage).copied().unwrap_or_default();
            let e = self.stages.entry(stage.clone()).or_default();
            e.0 += sum - s0;
            e.1 += count - c0;
        }
        for (name, (run, wait)) in &after.threads {
            let (r0, w0) = before.threads.get(name).copied().unwrap_or_default();
            let e = self.threads.entry(name.clone()).or_default();
            e.0 += run.saturating_sub(r0);
            e.1 += wait.saturating_sub(w0);
        }
    }

    pub fn waits(&self) -> Option<Waits> {
        if self.seconds <= 0.0 {
            return None;
        }
        let stages: Vec<StageMean> = Stage::ALL
            .iter()
            .filter_map(|stage| {
                let (sum, count) = self.stages.get(stage.as_str())?;
                (*count > 0.0).then(|| StageMean {
                    stage: stage.as_str().to_string(),
                    per: if stage.per_call() { "call" } else { "batch" },
                    mean_ms: sum / count * 1000.0,
                    count: *count as u64,
                })
            })
            .collect();
        let ns = self.seconds * 1e9;
        let mut threads: Vec<ThreadTime> = self
            .threads
            .iter()
            .map(|(name, (run, wait))| ThreadTime {
                thread: name.clone(),
                cpu_cores: *run as f64 / ns,
                runnable_waiting: *wait as f64 / ns,
            })
            .filter(|t| t.cpu_cores >= 0.005 || t.runnable_waiting >= 0.005)
            .collect();
        threads.sort_by(|a, b| b.cpu_cores.total_cmp(&a.cpu_cores));
        Some(Waits { stages, threads })
    }
}

/// `loanwire_store_stage_seconds_{sum,count}{stage="…"}` from the Prometheus text.
fn parse_stages(text: &str) -> Stages {
    let mut stages = Stages::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("loanwire_store_stage_seconds_") else {
            continue;
        };
        let (is_sum, rest) = if let Some(r) = rest.strip_prefix("sum{") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("count{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Some(stage) = labels
            .strip_prefix("stage=\"")
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let e = stages.entry(stage.to_string()).or_default();
        if is_sum {
            e.0 = value;
        } else {
            e.1 = value;
        }
    }
    stages
}

/// Each thread's run and run-queue wait times, summed by thread name (empty where `/proc` does
/// not tell).
fn threads(pid: u32) -> Threads {
    let mut out = Threads::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let mut fields = stat
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (run, wait) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let e = out.entry(name.trim().to_string()).or_default();
        e.0 += run;
        e.1 += wait;
    }
    out
}

/// The lines the human report prints for a level.
pub fn render(concurrency: usize, w: &Waits) -> String {
    let mut out = format!("where the gateway's time went at {concurrency} connections:\n");
    if !w.stages.is_empty() {
        let stages: Vec<String> = w
            .stages
            .iter()
            .map(|s| format!("{} {:.3} ms/{}", s.stage, s.mean_ms, s.per))
            .collect();
        out.push_str(&format!("  store stages (means): {}\n", stages.join(", ")));
    }
    if !w.threads.is_empty() {
        let threads: Vec<String> = w
            .threads
            .iter()
            .map(|t| {
                format!(
                    "{} {:.2} CPU + {:.2} waiting for a CPU",
                    t.thread, t.cpu_cores, t.runnable_waiting
                )
            })
            .collect();
        out.push_str(&format!(
            "  threads (cores' worth): {}\n",
            threads.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stage_sums_and_counts_are_read_from_the_prometheus_text() {
        let text = "# HELP x\nloanwire_store_stage_seconds_sum{stage=\"queue\"} 1.5\n\
                    loanwire_store_stage_seconds_count{stage=\"queue\"} 3\n\
                    loanwire_store_stage_seconds_bucket{le=\"0.1\",stage=\"queue\"} 3\n\
                    loanwire_store_stage_seconds_sum{stage=\"sync\"} 0.25\n\
                    loanwire_store_stage_seconds_count{stage=\"sync\"} 5\n";
        let s = parse_stages(text);
        assert_eq!(s["queue"], (1.5, 3.0));
        assert_eq!(s["sync"], (0.25, 5.0));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_tally_gives_means_per_stage_in_pipeline_order() {
        let before = Mark {
            at: Instant::now(),
            stages: Stages::from([("sync".into(), (1.0, 10.0)), ("queue".into(), (0.0, 0.0))]),
            threads: Threads::from([("w".into(), (0, 0))]),
        };
        let after = Mark {
            at: before.at + Duration::from_secs(2),
            stages: Stages::from([("sync".into(), (1.5, 20.0)), ("queue".into(), (0.2, 100.0))]),
            threads: Threads::from([("w".into(), (1_000_000_000, 500_000_000))]),
        };
        let mut t = Tally::default();
        t.add(&before, &after);
        let w = t.waits().expect("a second was measured");
        assert_eq!(w.stages[0].stage, "queue");
        assert!((w.stages[0].mean_ms - 2.0).abs() < 1e-9);
        assert_eq!(w.stages[1].stage, "sync");
        assert!((w.stages[1].mean_ms - 50.0).abs() < 1e-9);
        assert!((w.threads[0].cpu_cores - 0.5).abs() < 1e-9);
        assert!((w.threads[0].runnable_waiting - 0.25).abs() < 1e-9);
    }
}
