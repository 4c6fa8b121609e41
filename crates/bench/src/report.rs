//! The report for a human.

use crate::run::Report;

pub fn render(r: &Report) -> String {
    let s = &r.settings;
    let mut out = String::new();
    let what = match (s.duration_secs, s.requests) {
        (_, Some(n)) => format!("{n} calls per run in {} rounds", s.rounds),
        (Some(d), None) => format!("{d:.0} s per run in {} rounds", s.rounds),
        (None, None) => String::new(),
    };
    out.push_str(&format!(
        "loanwire bench: {} backend, {:.0}% callbacks / {:.0}% loan changes, {:.0}% duplicates, {}/{}, {what}{}\n\n",
        s.backend,
        s.callback_share * 100.0,
        (1.0 - s.callback_share) * 100.0,
        s.duplicate_ratio * 100.0,
        s.sign_method,
        s.format,
        if s.preload_loans > 0 { format!(", {} loan notes preloaded", s.preload_loans) } else { String::new() },
    ));
    out.push_str("conns | gateway calls/s    p50 ms    p90 ms    p99 ms    max ms | ceiling calls/s   p99 ms | ratio\n");
    out.push_str("------+---------------------------------------------------------+-------------------------+------\n");
    for run in &r.runs {
        let g = &run.gateway;
        let (c_rps, c_p99) = run
            .ceiling
            .as_ref()
            .map(|c| {
                (
                    format!("{:>15.0}", c.throughput_rps),
                    format!("{:>8.2}", c.latency.p99_ms),
                )
            })
            .unwrap_or_else(|| (format!("{:>15}", "-"), format!("{:>8}", "-")));
        let ratio = run
            .ratio_to_ceiling
            .map(|x| format!("{:>5.1}%", x * 100.0))
            .unwrap_or_else(|| "    -".into());
        out.push_str(&format!(
            "{:>5} | {:>15.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} | {c_rps} {c_p99} | {ratio}\n",
            run.concurrency,
            g.throughput_rps,
            g.latency.p50_ms,
            g.latency.p90_ms,
            g.latency.p99_ms,
            g.latency.max_ms
        ));
    }
    out.push('\n');
    for run in &r.runs {
        let ceiling = run.ceiling.as_ref().map_or_else(String::new, |c| {
            format!(", against the ceiling {:.1}", c.generator_cpu_us_per_call)
        });
        out.push_str(&format!(
            "generator CPU per call at {} connections (µs): against the gateway {:.1}{ceiling}\n",
            run.concurrency, run.gateway.generator_cpu_us_per_call
        ));
    }
    for run in &r.runs {
        if let Some(w) = &run.waits {
            out.push_str(&crate::waits::render(run.concurrency, w));
        }
    }
    for run in &r.runs {
        if !run.gateway.errors.is_empty() {
            out.push_str(&format!(
                "errors at {} connections, by code: {:?}\n",
                run.concurrency, run.gateway.errors
            ));
        }
    }
    if let Some(m) = r.gateway_peak_memory_mib {
        out.push_str(&format!("gateway peak memory (VmHWM): {m:.1} MiB\n"));
    }
    match &r.verification {
        Some(v) if v.missing == 0 => out.push_str(&format!(
            "verified: all {} acknowledged calls are in the gateway's inbox\n",
            v.acknowledged
        )),
        Some(v) => out.push_str(&format!(
            "VERIFICATION FAILED: {} of {} acknowledged calls are missing from the inbox, e.g. {:?}\n",
            v.missing, v.acknowledged, v.missing_examples
        )),
        None => out.push_str("not verified: no admin token for the target's read API\n"),
    }
    if let Some(d) = &r.delivery {
        out.push_str(&format!(
            "webhook: {} deliveries received, lag (call to receiver) p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; backlog when the load stopped {}, drained {}\n",
            d.received,
            d.lag_p50_ms,
            d.lag_p99_ms,
            d.lag_max_ms,
            d.backlog_at_end.map_or("?".into(), |b| b.to_string()),
            d.drained_after_secs.map_or("not within 60 s".into(), |s| format!("{s:.1} s later")),
        ));
        if let Some(l) = d.nats_lag_at_end_secs {
            out.push_str(&format!(
                "nats: lag when the load stopped {l:.2} s; {} events in the stream\n",
                d.nats_published.map_or("?".into(), |n| n.to_string())
            ));
        }
    }
    if let Some(ratio) = r.ratio_to_ceiling {
        let at = r
            .ratio_connections
            .map(|c| format!(" (at {c} connections)"))
            .unwrap_or_default();
        out.push_str(&format!("ratio to ceiling: {:.1}%{at}\n", ratio * 100.0));
    }
    out
}
